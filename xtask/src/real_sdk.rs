//! `cargo xtask real-sdk`: the real Virtuozzo SDK client (OpenVZ libprlsdk, prebuilt in
//! `../shared/real-sdk`) against prl-sim, through the small C programs of `tests/real-sdk/`.
//!
//! 1. finds the SDK (`$PRL_REAL_SDK`, else `../shared/real-sdk` or `../../shared/real-sdk`
//!    from the workspace root; missing is an error, never a skip) and installs it with its own `install.sh`
//!    into `<target>/real-sdk` (idempotent: it unpacks again and installs only missing Debian
//!    packages);
//! 2. builds the release prl-sim and compiles every program with gcc against the SDK's headers
//!    (`-Wall -Wextra -Werror`);
//! 3. runs each [`CASES`] entry: a fresh prl-sim on a loopback ephemeral port (and, for local
//!    logins, a unix socket in a temporary directory), then the program with its expectations
//!    in `PRL_TEST_*` variables (see `tests/real-sdk/common.h`), bounded in time; a passing case
//!    must exit 0 after printing `PASS`, a control case must exit 1 with a `FAIL` line;
//! 4. kills every simulator and removes its temporary directory (SDK logs included:
//!    `PRL_LOG_DIR` points into it) whatever happened.
//!
//! Local login (`PrlSrv_LoginLocalEx`) connects to a fixed path, `/var/run/prl_disp_service.socket`
//! (libprlcommon `VirtuozzoDirs::getDispatcherLocalSocketPath`, used by libprlsdk
//! `CPveControl::DspCmdUserLoginLocal`; no variable or argument changes it). The harness never
//! creates that path on the machine: the program runs in a private mount namespace
//! (`unshare --mount`, plus `--map-root-user` when not root) in which the case's own directory,
//! holding the simulator's socket, is bind-mounted on `/var/run`. A real service's socket, or
//! another run's, is untouched and concurrent runs cannot collide.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::{cargo, describe, exec, fmt_duration, wasm};

/// The programs' directory, relative to the workspace root.
pub const PROGRAM_DIR: &str = "tests/real-sdk";
/// Sources compiled into every program, in [`PROGRAM_DIR`].
const SHARED_SOURCES: &[&str] = &["common.c"];
/// Names the SDK directory (the one holding `install.sh`), overriding the search.
pub const SDK_ENV: &str = "PRL_REAL_SDK";
/// Where the SDK is looked for in the directories above the workspace root.
const SDK_SUBDIR: &str = "shared/real-sdk";
/// How many directories up: a clone next to `shared/` (CI's) or a worktree in a directory
/// next to it (`wt/<branch>`).
const SDK_SEARCH_LEVELS: usize = 2;
/// Where the SDK is installed, in the cargo target directory.
const INSTALL_SUBDIR: &str = "real-sdk";
/// The directory holding the service's unix socket, as the SDK has it compiled in.
const SDK_SOCKET_DIR: &str = "/var/run";
/// The service's unix socket name (libprlcommon `getLocalUnixSocketFileName`).
const SDK_SOCKET_NAME: &str = "prl_disp_service.socket";
/// The password user every simulator has.
const USER: &str = "alice";
const PASSWORD: &str = "wonder:land";
/// The user a local login maps to (`--local-user`).
const LOCAL_USER: &str = "localtester";
/// Longest a program may run (its own waits are bounded by `PRL_TEST_TIMEOUT_MS`, 10 s).
const PROGRAM_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a simulator may take to print its ready line.
const SIM_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How a case logs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Login {
    /// `PrlSrv_LoginEx` over TCP as [`USER`].
    Remote,
    /// `PrlSrv_LoginLocalEx` over the unix socket; the simulator maps our uid to a user.
    Local,
    /// `PrlSrv_LoginLocalEx` to a simulator that maps no uid.
    LocalUnmapped,
}

/// What the program must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Every check passes: exit 0 after `PASS`.
    Pass,
    /// A control: the simulator is configured wrongly for the expectations, so a check must
    /// fail (exit 1, a `FAIL` line). Proves the program can fail.
    Fail,
}

/// One run of one program against one freshly started simulator.
#[derive(Debug)]
struct Case {
    name: &'static str,
    /// `tests/real-sdk/<program>.c`.
    program: &'static str,
    /// prl-sim flags besides `--listen`, `--user`, `--server-uuid`, `--product-version`.
    sim: &'static [&'static str],
    /// `PRL_TEST_SECURITY`: 0 LOW, 1 NORMAL, 2 HIGH.
    security: u8,
    login: Login,
    /// `PRL_TEST_EXPECT`: the result of the program's main operation, a `PRL_ERR_*` name of
    /// the SDK's headers.
    expect: &'static str,
    /// More `PRL_TEST_*` variables, overriding the defaults.
    env: &'static [(&'static str, &'static str)],
    /// An inventory file of [`PROGRAM_DIR`] the simulator serves (`--vms`); none: its default.
    vms: Option<&'static str>,
    outcome: Outcome,
}

const fn case(name: &'static str, program: &'static str) -> Case {
    Case {
        name,
        program,
        sim: &[],
        security: 0,
        login: Login::Remote,
        expect: "PRL_ERR_SUCCESS",
        env: &[],
        vms: None,
        outcome: Outcome::Pass,
    }
}

const NORMAL_SIM: &[&str] = &["--min-security", "normal"];
const HIGH_SIM: &[&str] = &["--min-security", "high"];
const WRONG_PASSWORD: &[(&str, &str)] = &[("PRL_TEST_PASSWORD", "wonder:lanD")];
/// A task per session that outlives the first connection and then ends by itself.
const TASK_TO_FINISH: &str = "30:100";
/// A task per session long enough to be cancelled (10 s).
const TASK_TO_CANCEL: &str = "100:100";
/// The inventory the VM programs expect (`tests/real-sdk/vms.toml`).
const VMS: Option<&str> = Some("vms.toml");

/// Every case, in order. To check a new operation: add `tests/real-sdk/<op>.c` (see its
/// README) and a passing case and a control case for it here.
const CASES: &[Case] = &[
    // PrlSrv_LoginEx at each level against a simulator with that minimum.
    case("login-low", "login"),
    Case {
        security: 1,
        sim: NORMAL_SIM,
        ..case("login-normal", "login")
    },
    Case {
        security: 2,
        sim: HIGH_SIM,
        ..case("login-high", "login")
    },
    // Refusals.
    Case {
        env: WRONG_PASSWORD,
        expect: "PRL_ERR_AUTHENTICATION_FAILED",
        ..case("login-low-wrong-password", "login")
    },
    Case {
        security: 1,
        sim: NORMAL_SIM,
        env: WRONG_PASSWORD,
        expect: "PRL_ERR_AUTHENTICATION_FAILED",
        ..case("login-normal-wrong-password", "login")
    },
    Case {
        security: 2,
        sim: HIGH_SIM,
        env: WRONG_PASSWORD,
        expect: "PRL_ERR_AUTHENTICATION_FAILED",
        ..case("login-high-wrong-password", "login")
    },
    Case {
        env: &[("PRL_TEST_USER", "mallory")],
        expect: "PRL_ERR_AUTHENTICATION_FAILED",
        ..case("login-unknown-user", "login")
    },
    Case {
        sim: HIGH_SIM,
        expect: "PRL_ERR_HANDSHAKE_FAILED",
        ..case("login-low-vs-high-sim", "login")
    },
    Case {
        security: 1,
        sim: HIGH_SIM,
        expect: "PRL_ERR_HANDSHAKE_FAILED",
        ..case("login-normal-vs-high-sim", "login")
    },
    Case {
        sim: NORMAL_SIM,
        expect: "PRL_ERR_HANDSHAKE_FAILED",
        ..case("login-low-vs-normal-sim", "login")
    },
    // The real routing-table rule: NORMAL's plain default route conflicts with HIGH's SSL one.
    Case {
        security: 2,
        sim: NORMAL_SIM,
        expect: "PRL_ERR_HANDSHAKE_FAILED",
        ..case("login-high-vs-normal-sim", "login")
    },
    Case {
        sim: &["--fault", "stall-handshake"],
        env: &[("PRL_TEST_TIMEOUT_MS", "2000")],
        expect: "PRL_ERR_HANDSHAKE_FAILED",
        ..case("login-stalled-handshake", "login")
    },
    // PrlSrv_LoginLocalEx over the unix socket.
    Case {
        login: Login::Local,
        ..case("login-local-low", "login")
    },
    Case {
        security: 1,
        sim: NORMAL_SIM,
        login: Login::Local,
        ..case("login-local-normal", "login")
    },
    Case {
        security: 2,
        sim: HIGH_SIM,
        login: Login::Local,
        ..case("login-local-high", "login")
    },
    Case {
        login: Login::LocalUnmapped,
        expect: "PRL_ERR_LOCAL_AUTHENTICATION_FAILED",
        ..case("login-local-unmapped-uid", "login")
    },
    // Lost tasks: re-login naming the lost session, PrlSrv_AttachToLostTask, events.
    Case {
        security: 1,
        sim: &[
            "--min-security",
            "normal",
            "--task-on-login",
            TASK_TO_FINISH,
        ],
        ..case("lost-task", "lost_task")
    },
    Case {
        security: 2,
        sim: &["--min-security", "high", "--task-on-login", TASK_TO_FINISH],
        login: Login::Local,
        ..case("lost-task-local", "lost_task")
    },
    // PrlJob_Cancel of an attached task.
    Case {
        security: 2,
        sim: &["--min-security", "high", "--task-on-login", TASK_TO_CANCEL],
        ..case("cancel", "cancel")
    },
    // Host configuration, VM list and a VM's power cycle with its state events, at every level
    // (and over the unix socket), and with the reply before the event.
    Case {
        vms: VMS,
        ..case("vm-ops-low", "vm_ops")
    },
    Case {
        security: 1,
        sim: NORMAL_SIM,
        vms: VMS,
        ..case("vm-ops-normal", "vm_ops")
    },
    Case {
        security: 2,
        sim: HIGH_SIM,
        vms: VMS,
        ..case("vm-ops-high", "vm_ops")
    },
    Case {
        security: 2,
        sim: HIGH_SIM,
        login: Login::Local,
        vms: VMS,
        ..case("vm-ops-local-high", "vm_ops")
    },
    Case {
        sim: &["--reply-before-event"],
        vms: VMS,
        ..case("vm-ops-reply-before-event", "vm_ops")
    },
    // The refused transitions and their codes.
    Case {
        security: 1,
        sim: NORMAL_SIM,
        vms: VMS,
        expect: "PRL_ERR_FAILURE",
        ..case("vm-refused", "vm_refused")
    },
    // PrlJob_Cancel on a VM start.
    Case {
        security: 2,
        sim: &["--min-security", "high", "--transition-ms", "start=3000"],
        vms: VMS,
        expect: "PRL_ERR_TASK_NOT_FOUND",
        ..case("vm-cancel", "vm_cancel")
    },
    // Controls: each program fails against a simulator configured wrongly for it.
    Case {
        sim: HIGH_SIM,
        outcome: Outcome::Fail,
        ..case("control-login-refused-by-level", "login")
    },
    Case {
        env: &[(
            "PRL_TEST_SERVER_UUID",
            "{00000000-0000-4000-8000-00000000c0de}",
        )],
        outcome: Outcome::Fail,
        ..case("control-login-other-server-uuid", "login")
    },
    Case {
        expect: "PRL_ERR_AUTHENTICATION_FAILED",
        outcome: Outcome::Fail,
        ..case("control-login-password-accepted", "login")
    },
    Case {
        login: Login::LocalUnmapped,
        outcome: Outcome::Fail,
        ..case("control-login-local-unmapped-uid", "login")
    },
    // The task ends right after its only progress event: no lost task to list.
    Case {
        sim: &["--task-on-login", "1:1"],
        outcome: Outcome::Fail,
        ..case("control-lost-task-finished-early", "lost_task")
    },
    Case {
        sim: &["--task-on-login", "1:1"],
        outcome: Outcome::Fail,
        ..case("control-cancel-finished-early", "cancel")
    },
    // The simulator's default inventory: other VMs, and db-01 runs.
    Case {
        outcome: Outcome::Fail,
        ..case("control-vm-ops-default-inventory", "vm_ops")
    },
    Case {
        expect: "PRL_ERR_FAILURE",
        outcome: Outcome::Fail,
        ..case("control-vm-refused-default-inventory", "vm_refused")
    },
    Case {
        sim: &["--transition-ms", "start=3000"],
        expect: "PRL_ERR_TASK_NOT_FOUND",
        outcome: Outcome::Fail,
        ..case("control-vm-cancel-default-inventory", "vm_cancel")
    },
];

/// `cargo xtask real-sdk [CASE...]`: every case, or those whose names contain a filter.
pub fn run(root: &Path, filters: &[String]) -> Result<()> {
    let started = Instant::now();
    let cases: Vec<&Case> = CASES
        .iter()
        .filter(|c| filters.is_empty() || filters.iter().any(|f| c.name.contains(f.as_str())))
        .collect();
    if cases.is_empty() {
        bail!("no real-sdk case matches {filters:?}");
    }
    let sdk = locate_sdk(root, std::env::var_os(SDK_ENV).map(PathBuf::from))?;
    let target = wasm::target_dir(root);
    let install = target.join(INSTALL_SUBDIR);

    let t = Instant::now();
    exec(Command::new(sdk.join("install.sh")).arg(&install))
        .with_context(|| format!("cannot install the real SDK from {}", sdk.display()))?;
    println!(
        "real-sdk: SDK from {} installed in {} ({})",
        sdk.display(),
        install.display(),
        fmt_duration(t.elapsed())
    );

    exec(Command::new(cargo()).current_dir(root).args([
        "build",
        "--locked",
        "--release",
        "-p",
        "prl-sim",
    ]))?;
    let sim = target.join("release").join("prl-sim");

    let t = Instant::now();
    let bin = install.join("tests");
    fs::create_dir_all(&bin)?;
    let mut programs: Vec<&str> = cases.iter().map(|c| c.program).collect();
    programs.sort_unstable();
    programs.dedup();
    compile_all(root, &install, &bin, &programs)?;
    println!(
        "real-sdk: compiled {} ({})",
        programs.join(", "),
        fmt_duration(t.elapsed())
    );

    let uid = fs::metadata("/proc/self")
        .context("cannot read /proc/self")?
        .uid();
    if cases.iter().any(|c| c.login != Login::Remote) {
        check_private_mounts(uid)?;
    }
    let scratch = Scratch::create()?;
    let ids = RunIds::new()?;
    let mut failed = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let dir = scratch.0.join(i.to_string());
        fs::create_dir_all(&dir)?;
        let t = Instant::now();
        let result = run_case(root, case, &sim, &bin, &dir, &ids, uid);
        let took = fmt_duration(t.elapsed());
        match result {
            Ok(note) => println!("real-sdk: {:<34} ok   {took:>6}  {note}", case.name),
            Err(err) => {
                println!("real-sdk: {:<34} FAILED {took}: {err:#}", case.name);
                failed.push(case.name);
            }
        }
    }
    drop(scratch);
    println!(
        "real-sdk: {} of {} cases passed in {}",
        cases.len() - failed.len(),
        cases.len(),
        fmt_duration(started.elapsed())
    );
    if !failed.is_empty() {
        bail!("real-sdk cases failed: {}", failed.join(", "));
    }
    Ok(())
}

/// The SDK directory: `explicit` (`$PRL_REAL_SDK`) if given, else the first of
/// `../shared/real-sdk` and `../../shared/real-sdk` from the workspace root. Either must hold
/// `install.sh`.
fn locate_sdk(root: &Path, explicit: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        if dir.join("install.sh").is_file() {
            return Ok(dir);
        }
        bail!(
            "{SDK_ENV}={} holds no install.sh: point it at the real SDK's directory \
             (install.sh, sdk-libs.tar.xz, sdk-include.tar.xz)",
            dir.display()
        );
    }
    let looked: Vec<PathBuf> = root
        .ancestors()
        .skip(1)
        .take(SDK_SEARCH_LEVELS)
        .map(|dir| dir.join(SDK_SUBDIR))
        .collect();
    if let Some(dir) = looked.iter().find(|d| d.join("install.sh").is_file()) {
        return Ok(dir.clone());
    }
    let list: Vec<String> = looked.iter().map(|d| d.display().to_string()).collect();
    bail!(
        "the real SDK client is missing: no install.sh in {}; set {SDK_ENV} to its directory \
         (install.sh, sdk-libs.tar.xz, sdk-include.tar.xz)",
        list.join(", ")
    )
}

/// Compiles `programs` into `bin`, all at once (gcc is the slow part of a warm run).
fn compile_all(root: &Path, install: &Path, bin: &Path, programs: &[&str]) -> Result<()> {
    let mut running = Vec::new();
    for program in programs {
        let mut cmd = gcc_command(root, install, program, &bin.join(program));
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start `{}`", describe(&cmd)))?;
        running.push((program, child));
    }
    let mut failed = Vec::new();
    for (program, mut child) in running {
        if !child.wait()?.success() {
            failed.push(format!("{PROGRAM_DIR}/{program}.c"));
        }
    }
    if !failed.is_empty() {
        bail!("gcc failed on {} (see above)", failed.join(", "));
    }
    Ok(())
}

/// gcc for one program: the program's source and [`SHARED_SOURCES`], the SDK's headers and
/// libraries (as `install.sh` builds its example), warnings as errors.
fn gcc_command(root: &Path, install: &Path, program: &str, out: &Path) -> Command {
    let dir = root.join(PROGRAM_DIR);
    let lib = install.join("lib");
    let mut cmd = Command::new("gcc");
    cmd.args([
        "-std=gnu11",
        "-O1",
        "-g",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-D_LIN_",
    ])
    // `FAIL login.c:65: ...`, not the machine's path.
    .arg(format!("-fmacro-prefix-map={}/=", dir.display()))
    .arg(format!("-I{}", install.join("include").display()))
    .arg(format!("-I{}", dir.display()))
    .arg("-o")
    .arg(out)
    .arg(dir.join(format!("{program}.c")))
    .args(SHARED_SOURCES.iter().map(|s| dir.join(s)))
    .arg("-pthread")
    .arg(format!("-L{}", lib.display()))
    .args(["-lprl_sdk", "-Wl,--disable-new-dtags"])
    .arg(format!("-Wl,-rpath-link,{}", lib.display()))
    .arg(format!("-Wl,-rpath,{}", lib.display()));
    cmd
}

/// The command line that runs `program` with [`SDK_SOCKET_DIR`] replaced by `socket_dir` in a
/// mount namespace of its own (see the module documentation).
fn private_socket_dir_command(uid: u32, socket_dir: &Path, program: &Path) -> Command {
    let mut cmd = Command::new("unshare");
    if uid != 0 {
        cmd.arg("--map-root-user");
    }
    cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(format!(
            r#"mount --bind "$0" {SDK_SOCKET_DIR} && exec "$@""#
        ))
        .arg(socket_dir)
        .arg(program);
    cmd
}

/// Fails clearly when this machine cannot give a process a private mount namespace.
fn check_private_mounts(uid: u32) -> Result<()> {
    let mut cmd = Command::new("unshare");
    if uid != 0 {
        cmd.arg("--map-root-user");
    }
    cmd.args(["--mount", "--propagation", "private", "true"]);
    let out = cmd.output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        other => {
            let why = match other {
                Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
                Err(e) => e.to_string(),
            };
            bail!(
                "local-login cases need a private mount namespace (`{}`: {why}): the SDK \
                 connects only to {SDK_SOCKET_DIR}/{SDK_SOCKET_NAME}, which this harness never \
                 creates on the machine; run as root or allow unprivileged user namespaces, or \
                 select remote cases only",
                describe(&cmd)
            )
        }
    }
}

/// The temporary directory of one run, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn create() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("prl-real-sdk-{}", std::process::id()));
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(err) = fs::remove_dir_all(&self.0) {
            eprintln!("real-sdk: cannot remove {}: {err}", self.0.display());
        }
    }
}

/// What identifies this run's simulators, so a program proves it talked to one of them.
#[derive(Debug)]
struct RunIds {
    server_uuid: String,
    product_version: String,
}

impl RunIds {
    fn new() -> Result<Self> {
        let fresh = || -> Result<String> {
            Ok(fs::read_to_string("/proc/sys/kernel/random/uuid")
                .context("cannot read a random uuid")?
                .trim()
                .to_ascii_lowercase())
        };
        let tag = fresh()?;
        Ok(RunIds {
            server_uuid: format!("{{{}}}", fresh()?),
            product_version: format!("prl-sim real-sdk {}", &tag[..8]),
        })
    }
}

/// A running prl-sim, killed on drop.
struct Sim {
    child: Child,
    tcp: SocketAddr,
    log: PathBuf,
}

impl Sim {
    fn start(mut cmd: Command, log: PathBuf) -> Result<Sim> {
        let stderr = fs::File::create(&log)?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start `{}`", describe(&cmd)))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("prl-sim listening on tcp://") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let mut sim = Sim {
            child,
            tcp: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        match rx.recv_timeout(SIM_READY_TIMEOUT) {
            Ok(addr) => {
                sim.tcp = addr
                    .parse()
                    .with_context(|| format!("prl-sim printed a bad address {addr:?}"))?;
                Ok(sim)
            }
            Err(_) => bail!(
                "prl-sim did not get ready (`{}`):\n{}",
                describe(&cmd),
                tail(&sim.log, 20)
            ),
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` to its end or kills it after `limit`.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Result<ExitStatus> {
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start `{}`", describe(cmd)))?;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("still running after {}: killed", fmt_duration(limit));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn run_case(
    root: &Path,
    case: &Case,
    sim_bin: &Path,
    bin: &Path,
    dir: &Path,
    ids: &RunIds,
    uid: u32,
) -> Result<String> {
    let socket_dir = dir.join("run");
    fs::create_dir_all(&socket_dir)?;
    let mut sim_cmd = Command::new(sim_bin);
    sim_cmd
        .args(["--listen", "127.0.0.1:0", "--server-uuid", &ids.server_uuid])
        .args(["--product-version", &ids.product_version])
        .arg("--user")
        .arg(format!("{USER}:{PASSWORD}"))
        .args(case.sim);
    if let Some(vms) = case.vms {
        sim_cmd.arg("--vms").arg(root.join(PROGRAM_DIR).join(vms));
    }
    if case.login != Login::Remote {
        sim_cmd.arg("--unix").arg(socket_dir.join(SDK_SOCKET_NAME));
    }
    if case.login == Login::Local {
        sim_cmd
            .arg("--local-user")
            .arg(format!("{LOCAL_USER}:{uid}"));
    }
    let sim = Sim::start(sim_cmd, dir.join("prl-sim.log"))?;

    let program = bin.join(case.program);
    let mut cmd = if case.login == Login::Remote {
        Command::new(&program)
    } else {
        private_socket_dir_command(uid, &socket_dir, &program)
    };
    let out_path = dir.join("stdout.txt");
    let err_path = dir.join("stderr.txt");
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path)?)
        .stderr(fs::File::create(&err_path)?)
        .envs(program_env(case, sim.tcp, ids))
        .env("PRL_LOG_DIR", dir.join("sdklog"))
        .envs(case.env.iter().copied());
    let status = run_bounded(&mut cmd, PROGRAM_TIMEOUT);
    let out = fs::read_to_string(&out_path).unwrap_or_default();
    let report = |status: &str| {
        format!(
            "{} {status}\n--- its output:\n{}--- the SDK's stderr (last lines):\n{}\
             --- prl-sim's log (last lines):\n{}",
            case.program,
            indent(&out),
            tail(&err_path, 15),
            tail(&sim.log, 15)
        )
    };
    let status = match status {
        Ok(s) => s,
        Err(e) => return Err(anyhow!(report(&format!("{e:#}")))),
    };
    let checks = out.lines().filter(|l| l.starts_with("ok: ")).count();
    let failure = out.lines().find(|l| l.starts_with("FAIL "));
    match case.outcome {
        Outcome::Pass if status.success() && out.lines().last() == Some("PASS") => Ok(format!(
            "{checks} check{}",
            if checks == 1 { "" } else { "s" }
        )),
        Outcome::Fail if status.code() == Some(1) && failure.is_some() => Ok(format!(
            "failed as it must: {}",
            failure.unwrap_or_default()
        )),
        Outcome::Pass => Err(anyhow!(report(&format!("{status}, want a PASS")))),
        Outcome::Fail => Err(anyhow!(report(&format!(
            "{status}, want exit status 1 after a FAIL line (a control case)"
        )))),
    }
}

/// The `PRL_TEST_*` variables of `case` (before its own overrides).
fn program_env(case: &Case, sim: SocketAddr, ids: &RunIds) -> Vec<(&'static str, String)> {
    let local = case.login != Login::Remote;
    vec![
        ("PRL_TEST_HOST", sim.ip().to_string()),
        ("PRL_TEST_PORT", sim.port().to_string()),
        ("PRL_TEST_USER", USER.to_owned()),
        ("PRL_TEST_PASSWORD", PASSWORD.to_owned()),
        ("PRL_TEST_SECURITY", case.security.to_string()),
        ("PRL_TEST_LOCAL", u8::from(local).to_string()),
        ("PRL_TEST_EXPECT", case.expect.to_owned()),
        ("PRL_TEST_SERVER_UUID", ids.server_uuid.clone()),
        ("PRL_TEST_PRODUCT_VERSION", ids.product_version.clone()),
    ]
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

/// The last `n` lines of a file, indented (empty when it cannot be read).
fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    indent(&lines[lines.len().saturating_sub(n)..].join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn programs_on_disk() -> Vec<String> {
        let dir = crate::workspace_root().join(PROGRAM_DIR);
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter_map(|n| n.strip_suffix(".c").map(str::to_owned))
            .filter(|n| !SHARED_SOURCES.contains(&format!("{n}.c").as_str()))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn every_program_has_a_passing_case_and_a_control_and_every_case_a_program() {
        let programs = programs_on_disk();
        assert!(programs.contains(&"login".to_owned()), "{programs:?}");
        for p in &programs {
            for outcome in [Outcome::Pass, Outcome::Fail] {
                assert!(
                    CASES
                        .iter()
                        .any(|c| c.program == p.as_str() && c.outcome == outcome),
                    "{p}.c has no {outcome:?} case"
                );
            }
        }
        for c in CASES {
            assert!(
                programs.iter().any(|p| p == c.program),
                "case {} names a missing program {}",
                c.name,
                c.program
            );
        }
    }

    #[test]
    fn inventory_files_exist() {
        for c in CASES {
            if let Some(vms) = c.vms {
                let path = crate::workspace_root().join(PROGRAM_DIR).join(vms);
                assert!(
                    path.is_file(),
                    "case {} names a missing {}",
                    c.name,
                    path.display()
                );
            }
        }
    }

    #[test]
    fn case_names_are_unique_and_expectations_are_sdk_names() {
        for (i, a) in CASES.iter().enumerate() {
            assert!(
                CASES.iter().skip(i + 1).all(|b| b.name != a.name),
                "{}",
                a.name
            );
            assert!(a.expect.starts_with("PRL_ERR_"), "{}", a.name);
            assert!(a.security <= 2, "{}", a.name);
            let control = a.name.starts_with("control-");
            assert_eq!(control, a.outcome == Outcome::Fail, "{}", a.name);
        }
    }

    #[test]
    fn every_expected_result_is_known_to_the_programs() {
        let common =
            fs::read_to_string(crate::workspace_root().join(PROGRAM_DIR).join("common.c")).unwrap();
        for c in CASES {
            assert!(
                common.contains(&format!("RESULT({})", c.expect)),
                "{} expects {}, which common.c's result_names lacks",
                c.name,
                c.expect
            );
        }
    }

    #[test]
    fn the_sdk_is_found_above_the_workspace_or_where_the_variable_says() {
        let base = std::env::temp_dir().join(format!("prl-real-sdk-locate-{}", std::process::id()));
        let sdk = base.join("work/shared/real-sdk");
        let clone = base.join("work/wt/clone");
        let elsewhere = base.join("elsewhere/deeper/x");
        for d in [&sdk, &clone, &elsewhere] {
            fs::create_dir_all(d).unwrap();
        }
        fs::write(sdk.join("install.sh"), "").unwrap();
        // A clone next to shared/ and a worktree one level further down both find it.
        assert_eq!(
            locate_sdk(&base.join("work/main"), None).ok(),
            Some(sdk.clone())
        );
        assert_eq!(locate_sdk(&clone, None).ok(), Some(sdk.clone()));
        // A clone elsewhere does not, and says where it looked and what to set.
        let err = format!("{:#}", locate_sdk(&elsewhere, None).unwrap_err());
        assert!(err.contains(SDK_ENV), "{err}");
        assert!(
            err.contains(
                &base
                    .join("elsewhere/deeper/shared/real-sdk")
                    .display()
                    .to_string()
            ),
            "{err}"
        );
        // The variable wins, and must name a directory with install.sh.
        assert_eq!(
            locate_sdk(&elsewhere, Some(sdk.clone())).ok(),
            Some(sdk.clone())
        );
        assert!(locate_sdk(&clone, Some(base.clone())).is_err());
        let _ = fs::remove_dir_all(&base);
    }

    #[test]
    fn programs_are_compiled_strictly_against_the_installed_sdk() {
        let cmd = gcc_command(
            Path::new("/w"),
            Path::new("/t/real-sdk"),
            "login",
            Path::new("/t/real-sdk/tests/login"),
        );
        let line = describe(&cmd);
        for part in [
            "-Werror",
            "-D_LIN_",
            "-I/t/real-sdk/include",
            "/w/tests/real-sdk/login.c /w/tests/real-sdk/common.c",
            "-lprl_sdk",
            "-Wl,-rpath,/t/real-sdk/lib",
        ] {
            assert!(line.contains(part), "{line}");
        }
    }

    #[test]
    fn local_programs_get_a_private_var_run() {
        let line = describe(&private_socket_dir_command(
            0,
            Path::new("/s/run"),
            Path::new("/b/login"),
        ));
        assert!(
            line.starts_with("unshare --mount --propagation private -- sh -c"),
            "{line}"
        );
        assert!(
            line.contains("mount --bind \"$0\" /var/run && exec \"$@\" /s/run /b/login"),
            "{line}"
        );
        let user = describe(&private_socket_dir_command(
            1000,
            Path::new("/s"),
            Path::new("/b"),
        ));
        assert!(
            user.starts_with("unshare --map-root-user --mount"),
            "{user}"
        );
    }
}
