/**
 * What a user gave us (a policy file, a pod or workload manifest) has problems: one line
 * each, naming the file, where in it, and what was expected. Commands print the lines and
 * exit 1; the sidecar reports them in a status record and keeps the policy in force.
 */
export class InputError extends Error {
  readonly problems: string[];

  constructor(problems: string[]) {
    super(problems.join("\n"));
    this.problems = problems;
    this.name = "InputError";
  }
}
