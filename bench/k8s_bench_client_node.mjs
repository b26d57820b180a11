// The comparison client for k8s_exec_bench: @kubernetes/client-node (version pinned in
// bench/package.json) against the same pod, timed inside Node.
//   node bench/k8s_bench_client_node.mjs KUBECONFIG NAMESPACE POD CONTAINER RUNS WARMUP
// Prints {"exec":[ms,...],"get":[ms,...]} on stdout.
//   node bench/k8s_bench_client_node.mjs --serve KUBECONFIG NAMESPACE POD CONTAINER
//     (for channel_exec_bench: reads a run count per line on stdin, times that many execs
//      and answers each line with {"samples":[ms,...]}, so that its runs can be interleaved
//      in blocks with other clients; exits at EOF)
//   exec: Exec.exec() of `true` (WebSocket upgrade, channels), until the status has come
//         and the socket has closed: the same end point as ours (read to the close).
//   get:  CoreV1Api.readNamespacedPod over the client's kept-alive connection (warm).
import * as k8s from '@kubernetes/client-node';
import { Writable } from 'node:stream';
import * as readline from 'node:readline';

const serve = process.argv[2] === '--serve';
const [kubeconfig, namespace, pod, container, runsArg, warmupArg] = process.argv.slice(
  serve ? 3 : 2,
);
const runs = Number(runsArg || 200);
const warmup = Number(warmupArg || 10);

const kc = new k8s.KubeConfig();
kc.loadFromFile(kubeconfig);
const exec = new k8s.Exec(kc);
const core = kc.makeApiClient(k8s.CoreV1Api);

const sink = () => new Writable({ write(_chunk, _enc, cb) { cb(); } });

function execOnce() {
  return new Promise((resolve, reject) => {
    let status = null;
    exec
      .exec(namespace, pod, container, ['true'], sink(), sink(), null, false, (s) => {
        status = s;
      })
      .then((ws) => {
        ws.on('error', reject);
        ws.on('close', () => {
          if (status && status.status === 'Success') resolve();
          else reject(new Error(`exec ended with status ${JSON.stringify(status)}`));
        });
      })
      .catch(reject);
  });
}

async function getOnce() {
  const p = await core.readNamespacedPod({ name: pod, namespace });
  if (!p || !p.metadata || p.metadata.name !== pod) throw new Error('unexpected pod');
}

async function timed(fn, n) {
  const samples = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return samples;
}

async function time(fn) {
  for (let i = 0; i < warmup; i++) await fn();
  return timed(fn, runs);
}

try {
  if (serve) {
    for await (const line of readline.createInterface({ input: process.stdin })) {
      process.stdout.write(JSON.stringify({ samples: await timed(execOnce, Number(line)) }) + '\n');
    }
    process.exit(0);
  }
  const execSamples = await time(execOnce);
  const getSamples = await time(getOnce);
  process.stdout.write(JSON.stringify({ exec: execSamples, get: getSamples }) + '\n');
} catch (e) {
  process.stderr.write(`client-node bench failed: ${e.stack || e}\n`);
  process.exit(1);
}
