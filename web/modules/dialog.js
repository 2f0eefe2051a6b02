// The confirmation dialog of destructive actions (a modal <dialog>: focus stays inside, Escape
// cancels, focus returns to the button that opened it).
import { byId } from './dom.js';

const dialog = byId('confirm');
const form = byId('confirm-form');
// Closed by its buttons (the page's CSP has form-action 'none': nothing is submitted).
byId('confirm-ok').addEventListener('click', () => dialog.close('ok'));
byId('confirm-cancel').addEventListener('click', () => dialog.close('cancel'));
form.addEventListener('submit', (e) => e.preventDefault());

/** Opens the dialog; resolves with the form's values on OK, `null` on Cancel or Escape. */
function ask({ title, text, ok, stop }) {
  const opener = document.activeElement;
  byId('confirm-title').textContent = title;
  byId('confirm-text').textContent = text;
  byId('confirm-ok').textContent = ok;
  const modes = byId('stop-mode');
  modes.hidden = !stop;
  if (stop) {
    const [graceful, kill] = form.elements.stopMode;
    graceful.disabled = !stop.canShutDown;
    (stop.canShutDown ? graceful : kill).checked = true;
  }
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      const confirmed = dialog.returnValue === 'ok';
      if (opener instanceof HTMLElement && opener.isConnected) opener.focus();
      resolve(confirmed ? { graceful: form.elements.stopMode.value === 'graceful' } : null);
    }, { once: true });
    dialog.showModal();
    // The safe choice has focus: Enter does not stop a VM by accident.
    byId('confirm-cancel').focus();
  });
}

/** Asks how (and whether) to stop `vm`: shut the guest down, or kill it. */
export async function confirmStop(vm) {
  const canShutDown = vm.state === 'running';
  const answer = await ask({
    title: `Stop ${vm.name}?`,
    text: canShutDown
      ? `${vm.name} is running. Shutting down asks its guest OS to stop; killing it powers it off at once.`
      : `${vm.name} is ${vm.state}: its guest cannot shut down, so stopping kills it. Unsaved data in the guest is lost.`,
    ok: 'Stop',
    stop: { canShutDown },
  });
  return answer && { graceful: answer.graceful };
}

/** Asks whether to reset `vm` (a hard restart). */
export async function confirmReset(vm) {
  const answer = await ask({
    title: `Reset ${vm.name}?`,
    text: `Resetting restarts ${vm.name} at once, like its reset button: unsaved data in the guest is lost.`,
    ok: 'Reset',
  });
  return answer && {};
}
