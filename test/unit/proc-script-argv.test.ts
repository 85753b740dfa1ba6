import assert from "node:assert/strict";
import { absoluteScriptPath, scriptNamedBy } from "../../microenforcer/proc/script-argv.ts";

const script = (exe: string, ...args: string[]): string | undefined => scriptNamedBy(exe, args);

describe("the script file an interpreter's argv names", () => {
  it("finds a shell's script operand, after its options", () => {
    assert.equal(script("dash", "sh", "/dev/shm/x.sh"), "/dev/shm/x.sh");
    assert.equal(script("dash", "/bin/sh", "/dev/shm/x.sh", "arg"), "/dev/shm/x.sh", "a shebang exec: INTERPRETER FILE");
    assert.equal(script("bash", "/bin/bash", "-e", "/dev/shm/x.sh"), "/dev/shm/x.sh", "a shebang with an argument");
    assert.equal(script("bash", "bash", "-eux", "-o", "pipefail", "--norc", "+x", "x.sh"), "x.sh");
    assert.equal(script("bash", "bash", "-eo", "pipefail", "x.sh"), "x.sh", "-o at a cluster's end takes the next argument");
    assert.equal(script("bash", "bash", "--rcfile", "/etc/rc", "--", "-x.sh"), "-x.sh", "-- ends the options");
    assert.equal(script("zsh", "zsh", "run"), "run");
  });

  it("finds the file a shell's -c command only runs, not a command line of its own", () => {
    assert.equal(script("dash", "sh", "-c", "/dev/shm/x.sh"), "/dev/shm/x.sh");
    assert.equal(script("dash", "sh", "-ec", "/dev/shm/x.sh arg1 arg2", "name"), "/dev/shm/x.sh");
    assert.equal(script("bash", "bash", "-c", "-x", "./x.sh"), "./x.sh", "the command is the first operand after all options");
    assert.equal(script("bash", "bash", "-c", ". /dev/shm/x.sh"), "/dev/shm/x.sh");
    assert.equal(script("bash", "bash", "-c", "source /dev/shm/x.sh"), "/dev/shm/x.sh");
    assert.equal(script("bash", "bash", "-c", "exec /dev/shm/x.sh"), "/dev/shm/x.sh");
    assert.equal(script("dash", "sh", "-c", "x.sh"), undefined, "a word without / is looked up in PATH");
    assert.equal(script("dash", "sh", "-c", "/dev/shm/x.sh; id"), undefined);
    assert.equal(script("dash", "sh", "-c", "curl x | sh"), undefined);
    assert.equal(script("dash", "sh", "-c", "$HOME/x.sh"), undefined, "an expansion is not a path");
    assert.equal(script("dash", "sh", "-c"), undefined);
  });

  it("knows when a shell runs no file: stdin, interactive, no operand", () => {
    assert.equal(script("dash", "sh"), undefined);
    assert.equal(script("dash", "sh", "-s", "x.sh"), undefined);
    assert.equal(script("bash", "bash", "-i"), undefined);
    assert.equal(script("dash", "sh", "-"), undefined);
    assert.equal(script("bash", "-bash"), undefined, "a login shell");
  });

  it("reads busybox's applet from argv[0], or from argv[1] after `busybox`", () => {
    assert.equal(script("busybox", "/bin/sh", "/dev/shm/x.sh"), "/dev/shm/x.sh");
    assert.equal(script("busybox", "busybox", "ash", "-c", "/dev/shm/x.sh"), "/dev/shm/x.sh");
    assert.equal(script("busybox", "ls", "/dev/shm/x.sh"), undefined, "ls is no interpreter");
    assert.equal(script("busybox", "busybox"), undefined);
  });

  it("finds python's script, not its inline code, module or stdin", () => {
    assert.equal(script("python3.12", "python3", "/tmp/x.py", "-c", "arg"), "/tmp/x.py");
    assert.equal(script("python3", "python3", "-u", "-B", "-W", "ignore", "-X", "dev", "x.py"), "x.py");
    assert.equal(script("python3", "python3", "-uBWignore", "x.py"), "x.py", "a valued option takes the rest of its cluster");
    assert.equal(script("python3", "python3", "-c", "import os"), undefined);
    assert.equal(script("python3", "python3", "-uc", "import os"), undefined);
    assert.equal(script("python3", "python3", "-m", "http.server"), undefined);
    assert.equal(script("python", "python", "-"), undefined);
  });

  it("finds perl's and ruby's script past their switches", () => {
    assert.equal(script("perl", "perl", "-Mstrict", "-I", "/lib", "-w", "/tmp/x.pl"), "/tmp/x.pl");
    assert.equal(script("perl", "perl", "-Mfeature=say", "x.pl"), "x.pl", "an attached module name is no -e");
    assert.equal(script("perl", "perl", "-l", "x.pl"), "x.pl", "-l takes no separate argument");
    assert.equal(script("perl", "perl", "-e", "print 1"), undefined);
    assert.equal(script("perl", "perl", "-we", "print 1"), undefined);
    assert.equal(script("ruby", "ruby", "-r", "json", "-w", "x.rb"), "x.rb");
    assert.equal(script("ruby", "ruby", "-e", "puts 1"), undefined);
  });

  it("finds node's, php's, lua's and awk's script file", () => {
    assert.equal(script("node", "node", "--require", "./hook.js", "--no-warnings", "--max-old-space-size=64", "app.js"), "app.js");
    assert.equal(script("node", "node", "-e", "1"), undefined);
    assert.equal(script("node", "node", "--print", "1"), undefined);
    assert.equal(script("php8.2", "php", "-d", "x=1", "-f", "/tmp/x.php"), "/tmp/x.php");
    assert.equal(script("php", "php", "/tmp/x.php"), "/tmp/x.php");
    assert.equal(script("php", "php", "-r", "echo 1;"), undefined);
    assert.equal(script("lua5.4", "lua", "-l", "socket", "x.lua"), "x.lua");
    assert.equal(script("gawk", "awk", "-F:", "-f", "/tmp/x.awk", "/etc/passwd"), "/tmp/x.awk");
    assert.equal(script("mawk", "awk", "{print}", "/etc/passwd"), undefined, "an awk operand is program text");
  });

  it("finds the program the dynamic loader runs, past its options", () => {
    assert.equal(script("ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2", "/tmp/.x/miner", "--threads", "2"), "/tmp/.x/miner");
    assert.equal(script("ld-linux-aarch64.so.1", "ld.so", "--library-path", "/tmp/lib", "--argv0", "kworker", "--inhibit-cache", "/tmp/x"), "/tmp/x");
    assert.equal(script("ld-musl-x86_64.so.1", "ld", "--preload", "/tmp/hook.so", "./dropped"), "./dropped");
    assert.equal(script("ld-linux-x86-64.so.2", "ld.so", "--list", "/bin/ls"), undefined, "--list runs nothing");
    assert.equal(script("ld-linux-x86-64.so.2", "ld.so", "--verify", "/bin/ls"), undefined);
  });

  it("names no script for a program that is no interpreter", () => {
    assert.equal(script("cat", "cat", "/dev/shm/x.sh"), undefined);
    assert.equal(script("env", "/usr/bin/env", "python3", "/tmp/x.py"), undefined, "env execs the interpreter next");
  });

  it("makes a relative script path absolute against the working directory, lexically", () => {
    assert.equal(absoluteScriptPath("/dev/shm//./x.sh", undefined), "/dev/shm/x.sh");
    assert.equal(absoluteScriptPath("./x.sh", "/dev/shm"), "/dev/shm/x.sh");
    assert.equal(absoluteScriptPath("../shm/x.sh", "/dev/mqueue"), "/dev/shm/x.sh");
    assert.equal(absoluteScriptPath("x.sh", undefined), undefined, "unknown without the working directory");
  });
});
