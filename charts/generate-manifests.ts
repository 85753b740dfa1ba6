/**
 * The kustomize install (manifests/) rendered from the Helm chart, so that both install the
 * same objects from one source: `npm run generate:manifests` after changing
 * charts/microenforcer; a test fails when they drift. Each chart template becomes the file
 * of the same name, without Helm's own labels. Not from the chart: the CRD (`npm run
 * generate:crd` writes it for both), the Namespace (Helm leaves the release namespace to the
 * user), and the kustomization.yaml files.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);
const repo = new URL("../", import.meta.url).pathname;

/** What one kustomize directory holds: the chart rendered with these values, these templates. */
interface Profile {
  dir: string;
  values: Record<string, unknown>;
  templates: string[];
}

export const profiles: Profile[] = [
  {
    dir: "manifests/base",
    values: { crds: { install: false } },
    templates: ["rbac.yaml", "deployment.yaml", "service.yaml", "pdb.yaml", "mutating-webhook.yaml", "exec-webhook.yaml", "validating-policy.yaml"],
  },
  {
    dir: "manifests/network-policy",
    // The example peer the README tells users to replace.
    values: { networkPolicy: { enabled: true, from: [{ ipBlock: { cidr: "10.0.0.0/28" } }] } },
    templates: ["network-policy.yaml"],
  },
];

export const RELEASE = "microenforcer";
export const NAMESPACE = "microenforcer-system";
/** Labels only Helm's own bookkeeping needs; kustomize users do not get them. */
export const HELM_LABELS = ["helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance"];

const helmLabelLine = new RegExp(`^\\s+(${HELM_LABELS.map((l) => l.replaceAll(".", "\\.")).join("|")}): .*\\n`, "gm");

/** `helm template` of the chart with these values (given as JSON: YAML is a superset), as the generated files are. */
export async function helmTemplate(helm: string, values: Record<string, unknown>, extra: string[] = []): Promise<string> {
  const rendering = run(helm, ["template", RELEASE, `${repo}charts/microenforcer`, "--namespace", NAMESPACE, "--values", "-", ...extra], { maxBuffer: 64 * 1024 * 1024 });
  rendering.child.stdin?.end(JSON.stringify(values));
  try {
    return (await rendering).stdout;
  } catch (err) {
    throw new Error(`helm template failed: ${(err as { stderr?: string }).stderr ?? (err as Error).message}`, { cause: err });
  }
}

/** Repository path → content of every generated file. */
export async function renderManifests(helm: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const profile of profiles) {
    const show = profile.templates.flatMap((t) => ["--show-only", `templates/${t}`]);
    const rendered = await helmTemplate(helm, profile.values, show);
    const bySource = new Map<string, string[]>();
    for (const document of rendered.split(/^---\n/m)) {
      const source = /^# Source: microenforcer\/templates\/(.+)\n/m.exec(document);
      if (source === null) continue;
      const body = document.replace(source[0], "").replace(helmLabelLine, "").trim();
      bySource.set(source[1]!, [...(bySource.get(source[1]!) ?? []), body]);
    }
    for (const template of profile.templates) {
      const documents = bySource.get(template);
      if (documents === undefined) throw new Error(`charts/microenforcer/templates/${template} rendered nothing for ${profile.dir}`);
      files.set(`${profile.dir}/${template}`, `# Generated from charts/microenforcer/templates/${template} by \`npm run generate:manifests\`. Do not edit.\n${documents.join("\n---\n")}\n`);
    }
  }
  return files;
}

/** The helm binary test/infra/helm/build.sh builds (cached by version). */
export async function buildHelm(): Promise<{ helm3: string; helm4: string }> {
  const { stdout } = await run(`${repo}test/infra/helm/build.sh`, { maxBuffer: 16 * 1024 * 1024 });
  const dir = stdout.trim().split("\n").at(-1) ?? "";
  return { helm3: `${dir}/helm3`, helm4: `${dir}/helm4` };
}

if (import.meta.main) {
  const { writeFileSync } = await import("node:fs");
  const { helm4 } = await buildHelm();
  for (const [path, text] of await renderManifests(helm4)) {
    writeFileSync(`${repo}${path}`, text);
    process.stdout.write(`wrote ${path}\n`);
  }
}
