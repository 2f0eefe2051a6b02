// Loads the package the way an application does and hands it to the test driver.
import init, * as prl from '/pkg/index.js';

await init();
window.prl = prl;
window.prlReady = true;
