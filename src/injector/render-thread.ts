// Entry point of a render thread (a worker_threads Worker started by RenderPool): runs the injection engine for
// jobs the main thread posts and answers each with its verdict. Everything it does is in render-job.ts.
import { parentPort } from 'node:worker_threads';

import { renderThreadHandler, type RenderThreadMessage, type RenderThreadRequest } from './render-job.js';

if (parentPort === null) throw new Error('render-thread.js runs as a worker thread of the meshrev injector');
const port = parentPort;
const handle = renderThreadHandler();
port.on('message', (request: RenderThreadRequest) => port.postMessage(handle(request)));
// The engine's modules are loaded by now (static imports), so jobs posted from here on do not wait for them.
const ready: RenderThreadMessage = { ready: true };
port.postMessage(ready);
