/**
 * @module Syslog per RFC 5424, over UDP (RFC 5426: one message per datagram) or TCP (RFC 6587
 * octet-counting framing: "LEN SP MSG", so messages may contain newlines).
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { hostname as osHostname } from 'node:os';
import { connect, type Socket } from 'node:net';

export interface SyslogHeader {
  facility: number;
  /** 0 emergency … 7 debug. */
  severity: number;
  timestamp: Date;
  hostname?: string;
  appName: string;
  procId?: string;
  msgId?: string;
}

/** RFC 5424 header fields are printable US-ASCII without spaces, or "-" (NILVALUE) when empty. */
function field(v: string | undefined, max: number): string {
  const s = (v ?? '').replace(/[^!-~]/g, '').slice(0, max);
  return s === '' ? '-' : s;
}

/** `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - BOM MSG` (no structured data; the message is UTF-8 JSON). */
export function formatSyslog(h: SyslogHeader, message: string): string {
  const pri = h.facility * 8 + h.severity;
  return `<${pri}>1 ${h.timestamp.toISOString()} ${field(h.hostname ?? osHostname(), 255)} ${field(h.appName, 48)} ${field(h.procId ?? String(process.pid), 128)} ${field(h.msgId, 32)} - \uFEFF${message}`;
}

/** RFC 6587 section 3.4.1: the message's length in octets, a space, the message. */
export function octetFrame(message: string): Buffer {
  const body = Buffer.from(message, 'utf8');
  return Buffer.concat([Buffer.from(`${body.length} `, 'ascii'), body]);
}

export interface SyslogTarget {
  host: string;
  port: number;
  protocol: 'udp' | 'tcp';
}

/** Sends messages; a TCP connection is opened on first use and reopened after an error. */
export class SyslogSender {
  private tcp: Socket | null = null;
  private udp: UdpSocket | null = null;
  constructor(private readonly target: SyslogTarget) {}

  async send(messages: string[]): Promise<void> {
    if (this.target.protocol === 'udp') {
      this.udp ??= createSocket(this.target.host.includes(':') ? 'udp6' : 'udp4');
      for (const m of messages) {
        await new Promise<void>((resolve, reject) =>
          this.udp!.send(Buffer.from(m, 'utf8'), this.target.port, this.target.host, (err) =>
            err ? reject(err) : resolve(),
          ),
        );
      }
      return;
    }
    const sock = await this.connection();
    const data = Buffer.concat(messages.map(octetFrame));
    await new Promise<void>((resolve, reject) => {
      sock.write(data, (err) => {
        if (err) {
          this.drop();
          reject(err);
        } else resolve();
      });
    });
  }

  private connection(): Promise<Socket> {
    if (this.tcp && !this.tcp.destroyed) return Promise.resolve(this.tcp);
    return new Promise((resolve, reject) => {
      const s = connect({ host: this.target.host, port: this.target.port });
      s.setTimeout(10_000);
      s.once('connect', () => {
        s.setTimeout(0);
        s.on('error', () => this.drop());
        s.on('close', () => {
          if (this.tcp === s) this.tcp = null;
        });
        this.tcp = s;
        resolve(s);
      });
      s.once('timeout', () => {
        s.destroy();
        reject(new Error(`syslog: connecting to ${this.target.host}:${this.target.port} timed out`));
      });
      s.once('error', (err) =>
        reject(new Error(`syslog: cannot connect to ${this.target.host}:${this.target.port}: ${err.message}`)),
      );
    });
  }

  private drop(): void {
    this.tcp?.destroy();
    this.tcp = null;
  }

  close(): void {
    this.drop();
    this.udp?.close();
    this.udp = null;
  }
}
