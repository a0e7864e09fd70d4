/**
 * @module A fault-injecting TCP proxy between one host and its controller, for machines where network
 * namespaces are not available (and as the loopback twin of the namespace tests). cut() drops every
 * open connection and resets new ones, as a host whose link went down sees it; restore() lets traffic
 * through again.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export class FaultProxy {
  private server: Server | null = null;
  private readonly open = new Set<Socket>();
  private cutOff = false;
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.server = createServer((client) => {
      if (this.cutOff) return client.resetAndDestroy();
      const upstream = connect(this.target.port, this.target.host);
      this.open.add(client);
      this.open.add(upstream);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        this.open.delete(client);
        this.open.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const addr = this.server.address();
    this.port = typeof addr === 'object' && addr ? addr.port : 0;
  }

  /** The link goes down: open connections are reset, new ones refused until restore(). */
  cut(): void {
    this.cutOff = true;
    for (const s of this.open) s.resetAndDestroy();
    this.open.clear();
  }

  restore(): void {
    this.cutOff = false;
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = null;
  }
}
