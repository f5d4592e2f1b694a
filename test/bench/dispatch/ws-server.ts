/**
 * Child process: a bare `ws` server that accepts connections and ignores what they say, the
 * baseline for what an idle WebSocket costs in memory. Prints `port <n>`; runs until killed.
 */
import { WebSocketServer } from 'ws';

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
wss.on('connection', (ws) => ws.on('message', () => undefined));
wss.on('listening', () => {
  const address = wss.address();
  process.stdout.write(`port ${typeof address === 'object' && address ? address.port : address}\n`);
});
