// `npm run bench -- intake`: build submissions against the all-in-one (`perry-hub start`, built),
// 8 concurrent clients, 1 MiB and 50 MiB tarballs, the CLI's base64 path and the binary path.
// Each figure sits next to a baseline measured in the same run on the same machine: writing the
// same bytes to a file while hashing them with SHA-256 (what storing a tarball minimally costs).
// Prints figures; never fails on them. Goals: 1 MiB submissions on the CLI's base64 path at 60
// or more per second; peak RSS of the nats-server under 300 MiB during the 200 x 1 MiB
// submissions (sampled like the hub's); peak RSS of the hub under 300 MiB during the 50 MiB
// runs; the binary path at 30% or more of the baseline throughput.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAllInOne } from './all-in-one.mjs';

const ROOT = join(import.meta.dirname, '..', '..');
const MiB = 1024 * 1024;
const CLIENTS = 8;
const CHUNK = 256 * 1024;
const WARMUP_SUBMISSIONS = 24;
const SCENARIOS = [
  { sizeMiB: 1, submissions: 200 },
  { sizeMiB: 50, submissions: 16 },
];

function rssKiB(pid) {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** CPU seconds a process has used (user + system). */
function cpuSecs(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** Peak RSS of each process while `work` runs, sampled every 20 ms, in MiB (by pid). */
async function withPeakRss(pids, work) {
  const peaks = pids.map((pid) => rssKiB(pid));
  const sample = () => pids.forEach((pid, i) => (peaks[i] = Math.max(peaks[i], rssKiB(pid))));
  const timer = setInterval(sample, 20);
  try {
    const result = await work();
    sample();
    return { result, peaksMiB: peaks.map((kib) => kib / 1024) };
  } finally {
    clearInterval(timer);
  }
}

function post(url, headers, parts) {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    let i = 0;
    const write = () => {
      while (i < parts.length) if (!req.write(parts[i++])) return void req.once('drain', write);
      req.end();
    };
    write();
  });
}

function chunks(buffer) {
  const out = [];
  for (let i = 0; i < buffer.length; i += CHUNK) out.push(buffer.subarray(i, i + CHUNK));
  return out;
}

/** The request `perry publish` sends (binary: a `tarball` file part instead of `tarball_b64`). */
function submission(tarball, licenseKey, binary) {
  const boundary = randomBytes(16).toString('hex');
  const field = (name, value) => `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
  const manifest = JSON.stringify({
    app_name: 'Bench',
    bundle_id: 'com.example.bench',
    version: '1',
    entry: 'src/main.ts',
    targets: ['linux'],
  });
  const head = Buffer.from(
    field('manifest', manifest) +
      field('credentials', '{}') +
      (binary
        ? `--${boundary}\r\nContent-Disposition: form-data; name="tarball"; filename="p.tar.gz"\r\nContent-Type: application/gzip\r\n\r\n`
        : `--${boundary}\r\nContent-Disposition: form-data; name="tarball_b64"\r\n\r\n`),
  );
  const tail = Buffer.from(`\r\n${field('license_key', licenseKey)}--${boundary}--\r\n`);
  const parts = [head, ...chunks(tarball), tail];
  return {
    headers: {
      'content-type': `multipart/form-data; boundary=${boundary}`,
      'content-length': parts.reduce((n, p) => n + p.length, 0),
    },
    parts,
  };
}

async function pool(total, work) {
  const latencies = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (next < total) {
        next++;
        const t0 = performance.now();
        await work();
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))];
  return { perSecond: total / seconds, seconds, p50: pct(50), p99: pct(99) };
}

/** Baseline: the same bytes written to a file and hashed, by 8 writers at once. */
function writeAndHash(path, data) {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    const out = createWriteStream(path);
    out.on('error', reject);
    out.on('close', () => {
      hash.digest();
      rmSync(path, { force: true });
      resolve();
    });
    let i = 0;
    const parts = chunks(data);
    const write = () => {
      while (i < parts.length) {
        hash.update(parts[i]);
        if (!out.write(parts[i++])) return void out.once('drain', write);
      }
      out.end();
    };
    write();
  });
}

const fmt = (n, digits = 1) => n.toFixed(digits).padStart(8);

async function main() {
  const dataDir = mkdtempSync(join(tmpdir(), 'perry-hub-bench-'));
  let hub;
  try {
    console.log(`intake benchmark: ${CLIENTS} concurrent clients against perry-hub start (all-in-one)`);
    const loadBefore = loadavg()
      .map((l) => l.toFixed(2))
      .join(' ');
    hub = await startAllInOne(ROOT, dataDir, {
      // No quotas: the benchmark submits more than a free license may in an hour.
      PERRY_HUB_SELF_HOSTED: 'true',
      // 8 clients at once from one address, each with license_key after a 50 MiB tarball: more
      // than the default unauthenticated-upload budget of an address lets through at once.
      PERRY_HUB_PREAUTH_BYTES_PER_ADDRESS: String(4096 * 1024 * 1024),
      PERRY_HUB_PREAUTH_BYTES_TOTAL: String(4096 * 1024 * 1024),
      // It sends one tarball many times to measure intake: each must be a new build, not a retry.
      PERRY_HUB_RESUBMIT_WINDOW_SECS: '0',
    });
    const reg = await post(`${hub.url}/api/v1/license/register`, { 'content-type': 'application/json' }, [
      Buffer.from('{}'),
    ]);
    const licenseKey = JSON.parse(reg.body).license_key;
    const idleMiB = rssKiB(hub.child.pid) / 1024;
    const natsPidFile = join(dataDir, 'nats', 'nats-server.pid');
    const natsPid = existsSync(natsPidFile) ? Number(readFileSync(natsPidFile, 'utf8').trim()) : 0;
    // Warm-up, not measured: the first submissions through each path compile its code (JIT),
    // which the first scenario measured would otherwise pay for alone.
    const warmup = Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08]), randomBytes(MiB - 3)]);
    for (const binary of [false, true]) {
      const body = binary ? warmup : Buffer.from(warmup.toString('base64'));
      await pool(WARMUP_SUBMISSIONS, async () => {
        const { headers, parts } = submission(body, licenseKey, binary);
        const reply = await post(`${hub.url}/api/v1/build`, headers, parts);
        if (reply.status !== 200) throw new Error(`submission failed: ${reply.status} ${reply.body}`);
      });
    }
    const rows = [];
    let peakAll = 0;
    for (const { sizeMiB, submissions } of SCENARIOS) {
      const tarball = Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08]), randomBytes(sizeMiB * MiB - 3)]);
      const base64 = Buffer.from(tarball.toString('base64'));
      let n = 0;
      const baseline = await pool(submissions, () => writeAndHash(join(dataDir, `baseline-${n++}`), tarball));
      for (const binary of [false, true]) {
        const cpuBefore = { hub: cpuSecs(hub.child.pid), nats: cpuSecs(natsPid) };
        const { result, peaksMiB } = await withPeakRss([hub.child.pid, natsPid], () =>
          pool(submissions, async () => {
            const { headers, parts } = submission(binary ? tarball : base64, licenseKey, binary);
            const reply = await post(`${hub.url}/api/v1/build`, headers, parts);
            if (reply.status !== 200) throw new Error(`submission failed: ${reply.status} ${reply.body}`);
          }),
        );
        const [peakMiB, natsPeakMiB] = peaksMiB;
        peakAll = Math.max(peakAll, peakMiB);
        const mib = sizeMiB * submissions;
        const cpu = {
          hub: ((cpuSecs(hub.child.pid) - cpuBefore.hub) * 1000) / mib,
          nats: ((cpuSecs(natsPid) - cpuBefore.nats) * 1000) / mib,
        };
        rows.push({
          sizeMiB,
          submissions,
          path: binary ? 'binary' : 'base64',
          result,
          baseline,
          peakMiB,
          natsPeakMiB,
          cpu,
        });
      }
    }
    console.log('');
    console.log(
      'tarball  path    subs |   subs/s     MiB/s   p50 ms   p99 ms | baseline subs/s     MiB/s   p50 ms   p99 ms |    ratio | peak RSS MiB hub     nats | CPU ms/MiB hub  nats',
    );
    for (const { sizeMiB, submissions, path, result: r, baseline: b, peakMiB, natsPeakMiB, cpu } of rows) {
      console.log(
        `${String(sizeMiB).padStart(3)} MiB  ${path.padEnd(6)} ${String(submissions).padStart(4)} | ${fmt(r.perSecond, 2)}  ${fmt(r.perSecond * sizeMiB)} ${fmt(r.p50, 0)} ${fmt(r.p99, 0)} |        ${fmt(b.perSecond, 2)}  ${fmt(b.perSecond * sizeMiB)} ${fmt(b.p50, 0)} ${fmt(b.p99, 0)} | ${fmt((100 * r.perSecond) / b.perSecond, 0)}% |     ${fmt(peakMiB)} ${fmt(natsPeakMiB)} |    ${fmt(cpu.hub, 2)} ${fmt(cpu.nats, 2)}`,
      );
    }
    const big = rows.filter((r) => r.sizeMiB === 50);
    const small = rows.find((r) => r.sizeMiB === 1 && r.path === 'base64');
    const binary = big.find((r) => r.path === 'binary');
    console.log('');
    console.log(`hub RSS idle ${idleMiB.toFixed(1)} MiB; peak during the runs ${peakAll.toFixed(1)} MiB`);
    console.log(`machine: ${cpus().length} CPUs, load average before the runs ${loadBefore}`);
    console.log(
      `goal: 1 MiB submissions (base64, the CLI's path), ${CLIENTS} clients >= 60/s: ${small.result.perSecond.toFixed(1)}/s`,
    );
    console.log(
      `goal: nats-server peak RSS during ${small.submissions} x 1 MiB submissions (base64, the first run) < 300 MiB: ${small.natsPeakMiB.toFixed(1)} MiB`,
    );
    console.log(
      `goal: peak RSS during 8 x 50 MiB uploads < 300 MiB: ${Math.max(...big.map((r) => r.peakMiB)).toFixed(1)} MiB`,
    );
    console.log(
      `goal: binary path >= 30% of baseline throughput (50 MiB): ${((100 * binary.result.perSecond) / binary.baseline.perSecond).toFixed(0)}%`,
    );
  } finally {
    if (hub) {
      hub.child.kill('SIGTERM');
      await new Promise((r) => (hub.child.exitCode !== null ? r() : hub.child.once('exit', r)));
    }
    if (existsSync(dataDir)) rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
