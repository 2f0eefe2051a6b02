/* login.c - PrlSrv_LoginEx (or PrlSrv_LoginLocalEx with PRL_TEST_LOCAL=1) at
 * PRL_TEST_SECURITY; the login job must return PRL_TEST_EXPECT.
 *
 * On success it also checks the login response against the simulator's configuration (its
 * server uuid and product version, a braced session uuid, no lost tasks), the server info the
 * SDK keeps (PrlSrv_GetServerInfo), PrlSrv_IsConnected (connected; local exactly for a local
 * login), and that PrlSrv_Logoff returns 0. */
#include "common.h"

#include <stdio.h>
#include <string.h>

static void check_server_info(const test_config *cfg, const test_login *t)
{
	char buf[512];
	get_string(PrlLoginResponse_GetServerUuid, t->response, buf, sizeof(buf),
			"PrlLoginResponse_GetServerUuid");
	if (cfg->server_uuid)
		CHECK(strcmp(buf, cfg->server_uuid) == 0, "server uuid %s, want %s", buf,
				cfg->server_uuid);
	get_string(PrlLoginResponse_GetProductVersion, t->response, buf, sizeof(buf),
			"PrlLoginResponse_GetProductVersion");
	if (cfg->product_version)
		CHECK(strcmp(buf, cfg->product_version) == 0, "product version %s, want %s", buf,
				cfg->product_version);
	get_string(PrlLoginResponse_GetHostOsVersion, t->response, buf, sizeof(buf),
			"PrlLoginResponse_GetHostOsVersion");
	CHECK(buf[0] != 0, "empty host OS version");
	PRL_UINT32 tasks = 99;
	PRL_RESULT rc = PrlLoginResponse_GetRunningTaskCount(t->response, &tasks);
	CHECK(PRL_SUCCEEDED(rc) && tasks == 0, "running tasks %u (rc 0x%08x), want 0",
			(unsigned)tasks, (unsigned)rc);
	test_ok("login response: server uuid, product and OS version as configured, no tasks");

	/* The SDK keeps the server info of the login reply. */
	PRL_HANDLE info = PRL_INVALID_HANDLE;
	rc = PrlSrv_GetServerInfo(t->server, &info);
	CHECK(PRL_SUCCEEDED(rc), "PrlSrv_GetServerInfo: 0x%08x", (unsigned)rc);
	get_string(PrlSrvInfo_GetServerUuid, info, buf, sizeof(buf), "PrlSrvInfo_GetServerUuid");
	if (cfg->server_uuid)
		CHECK(strcmp(buf, cfg->server_uuid) == 0, "server info uuid %s, want %s", buf,
				cfg->server_uuid);
	get_string(PrlSrvInfo_GetProductVersion, info, buf, sizeof(buf),
			"PrlSrvInfo_GetProductVersion");
	if (cfg->product_version)
		CHECK(strcmp(buf, cfg->product_version) == 0, "server info product %s, want %s", buf,
				cfg->product_version);
	PrlHandle_Free(info);
	test_ok("PrlSrv_GetServerInfo matches");

	PRL_BOOL connected = PRL_FALSE, local = PRL_FALSE;
	rc = PrlSrv_IsConnected(t->server, &connected, &local);
	CHECK(PRL_SUCCEEDED(rc), "PrlSrv_IsConnected: 0x%08x", (unsigned)rc);
	CHECK(connected, "PrlSrv_IsConnected: not connected after a successful login");
	CHECK(!local == !cfg->local, "PrlSrv_IsConnected: local %d, want %d", (int)local,
			cfg->local);
	test_ok("PrlSrv_IsConnected: connected, %s", local ? "local" : "remote");
}

int main(void)
{
	test_config cfg = test_config_from_env();
	sdk_init();
	test_login t = login_as_configured(&cfg, "", NULL, NULL);
	CHECK_RC("login", t.rc, cfg.expect);
	if (PRL_SUCCEEDED(t.rc)) {
		check_server_info(&cfg, &t);
		return test_pass(&t);
	}
	CHECK(t.response == PRL_INVALID_HANDLE, "a refused login has a login response");
	PrlHandle_Free(t.server);
	return test_pass(NULL);
}
