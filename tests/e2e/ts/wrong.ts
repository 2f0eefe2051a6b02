// Must NOT compile: proves tsc really checks calls against index.d.ts.
import { Server } from '@prl-web/client';

const server = new Server({ proxyUrl: 'wss://p/ws' });
void server.login({ host: 5, user: 'u' });
