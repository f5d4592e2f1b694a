import { createServer } from 'node:net';

/**
 * A port that was free a moment ago. Another process can still take it before the server binds,
 * so callers retry on "address already in use".
 */
export function getFreePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('could not read the bound port'))));
    });
  });
}

/** Log text that means the port was taken between picking and binding. */
export function looksLikePortInUse(logTail: string): boolean {
  return /address already in use|errno: 98|error: 98/i.test(logTail);
}
