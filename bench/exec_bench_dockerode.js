// Exec round-trip of `true` with dockerode (create + hijacked start + inspect), the
// comparison client for exec_bench. Prints {"samples":[ms,...]} on stdout.
//   node bench/exec_bench_dockerode.js CONTAINER RUNS WARMUP
'use strict';
const Docker = require('dockerode');

const [container, runsArg, warmupArg] = process.argv.slice(2);
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

(async () => {
  for (let i = 0; i < warmup; i++) await once();
  const samples = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    await once();
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  process.stdout.write(JSON.stringify({ samples }) + '\n');
})().catch((e) => {
  process.stderr.write(`dockerode bench failed: ${e.stack || e}\n`);
  process.exit(1);
});
