/** @module The demo's terminal: phase headings, aligned lines, colour only on a terminal (and never with NO_COLOR). */

export class Terminal {
  readonly color: boolean;
  private readonly started = Date.now();

  constructor(private readonly out: NodeJS.WriteStream = process.stdout) {
    this.color = Boolean(out.isTTY) && !process.env.NO_COLOR;
  }

  say(line = ''): void {
    this.out.write(line + '\n');
  }

  heading(text: string): void {
    this.say();
    this.say(this.paint('1', `== ${text}`));
  }

  paint(code: string, text: string): string {
    return this.color ? `\x1b[${code}m${text}\x1b[0m` : text;
  }

  bold = (t: string) => this.paint('1', t);
  dim = (t: string) => this.paint('2', t);
  red = (t: string) => this.paint('31', t);
  green = (t: string) => this.paint('32', t);
  yellow = (t: string) => this.paint('33', t);

  /** A host state in the colour a reader expects of it. */
  state(state: string, width = 0): string {
    const padded = state.padEnd(width);
    if (state === 'clean') return this.green(padded);
    if (state === 'tainted' || state === 'silent') return this.red(padded);
    if (state === 'drifted' || state.startsWith('replac')) return this.yellow(padded);
    return padded;
  }

  /** Seconds since the demo started, for "after 3.2 s" lines. */
  elapsed(since = this.started): string {
    return `${((Date.now() - since) / 1000).toFixed(1)} s`;
  }
}
