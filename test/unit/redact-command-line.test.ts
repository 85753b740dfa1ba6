import assert from "node:assert/strict";
import fc from "fast-check";
import { createRedactor, isSecretName, REDACTED } from "../../microenforcer/records/redact.ts";
import { processRecord } from "../../microenforcer/records/process-records.ts";
import { parsePolicies } from "../../policies/load.ts";
import type { ProcessInfo } from "../../microenforcer/tracker/process-tracker.ts";

const redact = (...args: string[]) => createRedactor().redact(args).args;

describe("records/redact", () => {
  it("keeps the name and replaces the value of secret options, in every argument form", () => {
    assert.deepEqual(redact("app", "--password=p1", "--api-key", "k1", "-token", "t1", "--db_pass", "d1"), ["app", `--password=${REDACTED}`, "--api-key", REDACTED, "-token", REDACTED, "--db_pass", REDACTED]);
    assert.deepEqual(redact("env", "PGPASSWORD=pg", "AWS_SECRET_ACCESS_KEY=ak", "DB_USER=u"), ["env", `PGPASSWORD=${REDACTED}`, `AWS_SECRET_ACCESS_KEY=${REDACTED}`, "DB_USER=u"]);
    assert.deepEqual(redact("java", "-Djavax.net.ssl.keyStorePassword=ks", "-jar", "a.jar"), ["java", `-Djavax.net.ssl.keyStorePassword=${REDACTED}`, "-jar", "a.jar"]);
    assert.deepEqual(redact("psql", "host=db password=pw user=x"), ["psql", `host=db password=${REDACTED} user=x`]);
    assert.deepEqual(redact("kubectl", "create", "secret", "generic", "s", "--from-literal=db-pass=x", "--from-literal=user=bob"), [
      "kubectl", "create", "secret", "generic", "s", `--from-literal=db-pass=${REDACTED}`, "--from-literal=user=bob",
    ]);
  });

  it("leaves references, settings and look-alikes alone", () => {
    const args = ["app", "--token-file", "/run/token", "--password-stdin", "registry", "--max-tokens", "100", "--bypass", "x", "--secret-name", "db", "--passthrough", "y"];
    assert.deepEqual(redact(...args), args);
    assert.deepEqual(redact("docker", "run", "-p", "8080:80", "nginx"), ["docker", "run", "-p", "8080:80", "nginx"], "-p is a port here");
    assert.deepEqual(redact("mysql", "-P3306", "-u", "root", "-p", "db"), ["mysql", "-P3306", "-u", "root", "-p", "db"], "a lone -p prompts");
    assert.equal(createRedactor().redact(["ls", "-la"]).redacted, false);
  });

  it("redacts passwords in URLs, query tokens, headers and bearer tokens", () => {
    assert.deepEqual(redact("curl", "-H", "Authorization: Bearer abc.def", "-H", "X-Api-Key: k", "https://bob:pw@h.example/x?token=t0k&y=1"), [
      "curl", "-H", `Authorization: Bearer ${REDACTED}`, "-H", `X-Api-Key: ${REDACTED}`, `https://bob:${REDACTED}@h.example/x?token=${REDACTED}&y=1`,
    ]);
    assert.deepEqual(redact("wget", "--header=Authorization: Basic Zm9vOmJhcg=="), ["wget", `--header=Authorization: Basic ${REDACTED}`]);
    assert.deepEqual(redact("git", "clone", "https://x-access-token:tok@github.com/o/r"), ["git", "clone", `https://x-access-token:${REDACTED}@github.com/o/r`]);
  });

  it("redacts token formats that identify themselves, wherever they are", () => {
    for (const token of [
      "AKIAIOSFODNN7EXAMPLE",
      "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
      "glpat-abcdefghij0123456789",
      "xoxb-1234567890-abcdefghij",
      "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
      "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
    ]) {
      assert.deepEqual(redact("tool", `x ${token} y`), ["tool", `x ${REDACTED} y`], token);
    }
  });

  it("knows the short password options of the programs that have them", () => {
    assert.deepEqual(redact("mysql", "-uroot", "-phunter2", "db"), ["mysql", "-uroot", `-p${REDACTED}`, "db"]);
    assert.deepEqual(redact("/usr/bin/sshpass", "-p", "pw", "ssh", "h"), ["/usr/bin/sshpass", "-p", REDACTED, "ssh", "h"]);
    assert.deepEqual(redact("redis-cli", "-a", "pw", "ping"), ["redis-cli", "-a", REDACTED, "ping"]);
    assert.deepEqual(redact("curl", "-u", "alice:pw", "-ubob:pw2", "-u", "carol", "u"), ["curl", "-u", `alice:${REDACTED}`, `-ubob:${REDACTED}`, "-u", "carol", "u"]);
    assert.deepEqual(redact("docker", "login", "-u", "me", "-p", "pw", "reg"), ["docker", "login", "-u", "me", "-p", REDACTED, "reg"]);
    assert.deepEqual(redact("openssl", "enc", "-pass", "pass:pw", "-passin", "env:VAR", "-k", "pw2"), ["openssl", "enc", "-pass", `pass:${REDACTED}`, "-passin", "env:VAR", "-k", REDACTED]);
    assert.deepEqual(redact("htpasswd", "-bc", "f", "u", "pw"), ["htpasswd", "-bc", "f", "u", REDACTED]);
    assert.deepEqual(redact("keytool", "-importcert", "-storepass", "pw", "-alias", "a"), ["keytool", "-importcert", "-storepass", REDACTED, "-alias", "a"]);
    assert.deepEqual(redact("aws", "configure", "set", "aws_secret_access_key", "pw"), ["aws", "configure", "set", "aws_secret_access_key", REDACTED]);
  });

  it("applies every rule per command inside sh -c scripts", () => {
    assert.deepEqual(redact("sh", "-c", "mysql -uroot -pabc db && curl -H 'Authorization: Basic Zm9v' https://h/ ; sudo sshpass -p pw ssh h"), [
      "sh", "-c", `mysql -uroot -p${REDACTED} db && curl -H 'Authorization: Basic ${REDACTED}' https://h/ ; sudo sshpass -p ${REDACTED} ssh h`,
    ]);
  });

  it("adds policy patterns: a `secret` group replaces only that part", () => {
    const redactor = createRedactor(["acct-(?<secret>\\d+)", "internal-[a-z]+"]);
    assert.deepEqual(redactor.redact(["tool", "ACCT-1234", "x internal-build y"]).args, ["tool", `ACCT-${REDACTED}`, `x ${REDACTED} y`]);
  });

  it("names: secret words and compounds, not references or look-alikes", () => {
    for (const name of ["password", "--db-password", "PGPASSWORD", "MYSQL_PWD", "api_key", "x-api-key", "apikey", "client-secret", "aws_secret_access_key", "--auth-token", "--pass", "creds"]) {
      assert.ok(isSecretName(name), name);
    }
    for (const name of ["--password-file", "token_ttl", "--access-key-id", "--bypass", "--passthrough", "--max-tokens", "--key", "compass", "user"]) {
      assert.ok(!isSecretName(name), name);
    }
  });

  it("properties: never throws, keeps the argument count, is idempotent, and a secret in a known form never survives", () => {
    const secret = fc.stringMatching(/^[A-Za-z0-9]{6,20}$/).map((s) => `Zq${s}`);
    const filler = fc.array(fc.string({ unit: "binary", maxLength: 30 }), { maxLength: 6 });
    const form = fc.constantFrom(
      (s: string) => [`--password=${s}`],
      (s: string) => ["--api-key", s],
      (s: string) => [`DB_PASSWORD=${s}`],
      (s: string) => [`https://u:${s}@host/`],
      (s: string) => ["-H", `Authorization: Bearer ${s}`],
      (s: string) => [`https://h/?access_token=${s}&a=b`],
    );
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 20 }), filler, form, secret, filler, (program, before, make, value, after) => {
        const args = [program, ...before, ...make(value), ...after];
        const { args: out, redacted } = createRedactor().redact(args);
        assert.equal(out.length, args.length);
        assert.ok(redacted);
        assert.ok(!out.join("\u0000").includes(value), JSON.stringify({ args, out }));
        assert.deepEqual(createRedactor().redact(out).args, out, "idempotent");
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.array(fc.string({ unit: "binary", maxLength: 200 }), { maxLength: 10 }), (args) => {
        const out = createRedactor().redact(args).args;
        assert.equal(out.length, args.length);
      }),
      { numRuns: 500 },
    );
  });
});

describe("records/process-records with redaction", () => {
  const process: ProcessInfo = {
    pid: 42,
    ppid: 1,
    startTicks: 100,
    comm: "mysql",
    args: ["mysql", "-uroot", "-phunter2", "--host=db"],
    euid: 0,
    uid: 0,
    origin: "child",
    container: { name: "app" },
    detection: "trigger",
    image: "exec",
  } as unknown as ProcessInfo;
  const clock = { bootMs: 0, ticksPerSecond: 100 };

  it("redacts the command line and the arguments alike, and marks the record", () => {
    const [policy] = parsePolicies("apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: p}\nspec: {forensics: {redaction: {patterns: ['host=(?<secret>\\w+)']}}}\n", "p.yaml");
    const record = processRecord({ kind: "exec", process, observedAt: 1000, inPlace: false } as never, clock, policy!.spec.forensics);
    assert.equal(record?.attributes["process.command_line"], `mysql -uroot '-p${REDACTED}' '--host=${REDACTED}'`);
    assert.deepEqual(record?.attributes["process.command_args"], ["mysql", "-uroot", `-p${REDACTED}`, `--host=${REDACTED}`]);
    assert.equal(record?.attributes["microenforcer.redacted"], true);
    assert.deepEqual(process.args, ["mysql", "-uroot", "-phunter2", "--host=db"], "the process facts stay as read");
  });

  it("a policy with an invalid pattern is refused with its path", () => {
    assert.throws(
      () => parsePolicies("apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: p}\nspec: {forensics: {redaction: {patterns: ['(unclosed']}}}\n", "p.yaml"),
      { message: `p.yaml: /spec/forensics/redaction/patterns/0: expected string to match 'regex' format, found "(unclosed"` },
    );
  });
});
