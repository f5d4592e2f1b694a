import { createServer, type Server } from 'node:net';

/**
 * A port that was free a moment ago. Another process can still take it before the server binds,
 * so callers retry on "address already in use".
 */
export async function getFreePort(host = '127.0.0.1'): Promise<number> {
  const [port] = await getFreePorts(1, host);
  return port!;
}

/**
 * `count` ports, all different: each is held until every one is picked (the kernel hands a
 * just-closed port out again, so picking them one after the other can repeat one).
 */
export async function getFreePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const server = createServer();
      server.unref();
      servers.push(server);
      ports.push(
        await new Promise<number>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ port: 0, host, exclusive: true }, () => {
            const address = server.address();
            const port = typeof address === 'object' && address !== null ? address.port : 0;
            if (port > 0) resolve(port);
            else reject(new Error('could not read the bound port'));
          });
        }),
      );
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => (s.listening ? s.close(r) : r(undefined)))));
  }
}

/** Log text that means the port was taken between picking and binding. */
export function looksLikePortInUse(logTail: string): boolean {
  return /address already in use|errno: 98|error: 98/i.test(logTail);
}
