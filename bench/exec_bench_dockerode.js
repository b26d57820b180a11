// Exec round-trip of `true` with dockerode (create + hijacked start + inspect), the
// comparison client for exec_bench. Prints {"samples":[ms,...]} on stdout.
//   node bench/exec_bench_dockerode.js CONTAINER RUNS WARMUP
//   node bench/exec_bench_dockerode.js --serve CONTAINER
//     (for channel_exec_bench: reads a run count per line on stdin, times that many runs
//      and answers each line with {"samples":[ms,...]}, so that its runs can be interleaved
//      in blocks with other clients; exits at EOF)
'use strict';
const Docker = require('dockerode');
const readline = require('node:readline');

const serve = process.argv[2] === '--serve';
const [container, runsArg, warmupArg] = process.argv.slice(serve ? 3 : 2);
const runs = Number(runsArg || 200);
const warmup = Number(warmupArg || 10);
const docker = new Docker({ socketPath: process.env.DOCKER_SOCKET || '/var/run/docker.sock' });

async function once() {
  const c = docker.getContainer(container);
  const exec = await c.exec({ Cmd: ['true'], AttachStdout: true, AttachStderr: true, Tty: false });
  const stream = await exec.start({ hijack: true, stdin: false });
  await new Promise((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('close', resolve);
    stream.on('error', reject);
    stream.resume();
  });
  const info = await exec.inspect();
  if (info.ExitCode !== 0) throw new Error(`exit code ${info.ExitCode}`);
}

async function timed(n) {
  const samples = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await once();
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return samples;
}

(async () => {
  if (serve) {
    for await (const line of readline.createInterface({ input: process.stdin })) {
      process.stdout.write(JSON.stringify({ samples: await timed(Number(line)) }) + '\n');
    }
    return;
  }
  for (let i = 0; i < warmup; i++) await once();
  const samples = await timed(runs);
  process.stdout.write(JSON.stringify({ samples }) + '\n');
})().catch((e) => {
  process.stderr.write(`dockerode bench failed: ${e.stack || e}\n`);
  process.exit(1);
});
