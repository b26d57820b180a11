// The apiserver's own share of a Kubernetes warm claim, measured with an independent client
// (@kubernetes/client-node, version pinned in bench/package.json) in the pool bench's run:
// the claim's atomic step is one merge patch of the pod's labels with a resourceVersion
// precondition (src/k8s/k8s_provider_warm.cpp), so no server can hand out a claim faster than
// the cluster answers that patch. This times exactly that patch, alone and PAR at once, on
// PAR running pods of a namespace of its own (made and deleted here).
//   node bench/k8s_claim_floor.mjs KUBECONFIG IMAGE [PAR] [ROUNDS] [SEQ]
// Prints {"sequential":[ms,...],"parallel":[ms,...]} on stdout; progress on stderr.
import * as k8s from '@kubernetes/client-node';

const [kubeconfig, image, parArg, roundsArg, seqArg] = process.argv.slice(2);
const par = Number(parArg || 20);
const rounds = Number(roundsArg || 5);
const seq = Number(seqArg || 40);
const namespace = `agentpane-claim-floor-${process.pid}`;

const kc = new k8s.KubeConfig();
kc.loadFromFile(kubeconfig);
const core = kc.makeApiClient(k8s.CoreV1Api);
// One client per concurrent patch, like PAR servers' threads with a connection each.
const clients = Array.from({ length: par }, () => kc.makeApiClient(k8s.CoreV1Api));
const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const names = Array.from({ length: par }, (_, i) => `floor-${i}`);

function podBody(name) {
  return {
    metadata: { name, labels: { 'agentpane.io/warm-pool-state': 'warm' } },
    spec: {
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: 0,
      securityContext: {
        runAsNonRoot: true,
        runAsUser: 1000,
        runAsGroup: 1000,
        seccompProfile: { type: 'RuntimeDefault' },
      },
      containers: [
        {
          name: 'sandbox',
          image,
          imagePullPolicy: 'Never',
          command: ['sleep', 'infinity'],
          resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { memory: '64Mi' } },
          securityContext: {
            allowPrivilegeEscalation: false,
            capabilities: { drop: ['ALL'] },
          },
        },
      ],
    },
  };
}

// The claim's patch: the state and the project's labels, the project path, at the version read.
async function claimPatch(client, name, resourceVersion, n) {
  const t0 = process.hrtime.bigint();
  await client.patchNamespacedPod(
    {
      name,
      namespace,
      body: {
        metadata: {
          resourceVersion,
          labels: {
            'agentpane.io/warm-pool-state': n % 2 ? 'allocated' : 'warm',
            'agentpane.io/project-id': `p-${n}`,
            'agentpane.io/agent-id': 'bench',
          },
          annotations: { 'agentpane.io/project-path': `/projects/p-${n}` },
        },
      },
    },
    mergePatch,
  );
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

async function main() {
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  try {
    for (const n of names) await core.createNamespacedPod({ namespace, body: podBody(n) });
    for (let waited = 0; ; waited += 250) {
      const list = await core.listNamespacedPod({ namespace });
      const running = list.items.filter((p) => p.status?.phase === 'Running').length;
      if (running === par) break;
      if (waited > 180000) throw new Error(`only ${running} of ${par} pods running after 180 s`);
      await sleep(250);
    }
    await sleep(3000);  // let the pods' start settle
    const rv = async (name) =>
      (await core.readNamespacedPod({ name, namespace })).metadata.resourceVersion;
    const sequential = [];
    for (let i = 0; i < seq; i++) {
      const name = names[i % par];
      sequential.push(await claimPatch(core, name, await rv(name), i));
      await sleep(50);
    }
    const parallel = [];
    for (let r = 0; r < rounds; r++) {
      const rvs = await Promise.all(names.map(rv));
      await sleep(1000);
      const times = await Promise.all(
        names.map((name, i) => claimPatch(clients[i], name, rvs[i], r * par + i + 1)),
      );
      parallel.push(...times);
      process.stderr.write(`\rclaim floor: round ${r + 1}/${rounds}`);
    }
    process.stderr.write('\n');
    process.stdout.write(JSON.stringify({ sequential, parallel }) + '\n');
  } finally {
    await core.deleteNamespace({ name: namespace });
  }
}

main().catch((e) => {
  console.error(`claim floor: ${e.body ? JSON.stringify(e.body) : e.message || e}`);
  process.exit(1);
});
