/** @module The controller side of the CLI: the server, token bootstrap, and people's commands over the API. */
import type { CloudIdentity } from '../shared/schema/identity.js';
import { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import { api, apiTarget, apiText } from '../shared/api-client.js';
import { DwError } from '../shared/errors.js';
import { runProgram } from '../shared/cli-run.js';
import { loadControllerConfig } from './config.js';
import { controllerLogger, startController } from './server.js';
import { openStore } from './store/index.js';
import { createToken, revokeToken, TokenRequestSchema } from './routes/tokens.js';
import type { HostRow, TokenRow } from './store/types.js';
import { REPORT_FORMATS } from './drift-report.js';
import { describeChainReport, verifyChain } from './verify-history.js';
import { anchorSignatureProblem, createAnchor, readAnchors, verifyAgainstAnchor } from './audit-anchor.js';
import { loadPrivateKey, loadPublicKey } from '../shared/sign.js';
import { registerHostActionCommands } from './cli-hosts.js';
import { registerReplacementCommands } from './cli-replacements.js';
import { registerRetentionCommands } from './cli-retention.js';
import { registerFindingCommands } from './cli-findings.js';
import { resolveAmong, resolveHost } from './cli-resolve.js';
import { table } from './cli-table.js';
import { describeAttribution } from '../shared/attribution-text.js';
import { changeLines } from '../shared/change-text.js';
import type { HostDeviation } from '../shared/schema/findings.js';

const out = (s: string): void => void process.stdout.write(s);
const remote = (cmd: Command) =>
  cmd
    .option('--url <url>', 'controller URL (default $DRIFTWARDEN_URL)')
    .option('--token <token>', 'API token (default $DRIFTWARDEN_TOKEN)')
    .option('--json', 'print JSON');

/** The flag each field of a token request comes from, for usage errors. */
const TOKEN_FLAGS: Record<string, string> = {
  name: '--name',
  role: '--role',
  expiresIn: '--expires',
  maxUses: '--uses',
  groups: '--group',
};

function describeLimits(t: TokenRow): string {
  const parts = [`expires ${t.expiresAt ?? 'never'}`];
  if (t.role === 'agent')
    parts.push(
      `${t.maxUses ?? 'unlimited'} use${t.maxUses === 1 ? '' : 's'}`,
      t.groups ? `groups ${t.groups.join(', ')}` : 'any group',
    );
  return `, ${parts.join(', ')}`;
}

export function buildProgram(): Command {
  const program = new Command('driftwarden')
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`driftwarden: ${str.replace(/^error: /, '')}`) });

  program
    .command('controller')
    .description('run the controller (HTTP API, store, policy, host states)')
    .requiredOption('--config <file>', 'controller.yaml')
    .action(async (o: { config: string }) => {
      const config = loadControllerConfig(o.config);
      const log = controllerLogger();
      const running = await startController(config, { log });
      const stop = (signal: string) => {
        log.info({ signal }, 'shutting down: finishing in-flight requests');
        running.close().then(
          () => process.exit(0),
          (err: unknown) => {
            log.error({ err }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });

  const token = program.command('token').description('API and enrollment tokens');
  token
    .command('create')
    .description(
      'create a token by writing to the store directly (bootstraps the first admin); the secret is printed once',
    )
    .requiredOption('--config <file>', 'controller.yaml (for its store)')
    .requiredOption('--role <role>', 'agent (enrollment) | viewer | operator | admin')
    .option('--name <name>', 'what the token is for', 'cli')
    .option('--expires <duration>', 'lifetime such as 30d, or never (enrollment tokens: default 24h; others: never)')
    .option('--expires-in <duration>', 'the same as --expires (older spelling)')
    .option('--uses <n>', 'enrollment tokens: how many hosts it may enroll (default 1), or unlimited')
    .option(
      '--group <glob>',
      "enrollment tokens: a host's group must match (repeatable, e.g. 'web-*'); then a host must name a group",
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .action(
      async (o: {
        config: string;
        role: string;
        name: string;
        expires?: string;
        expiresIn?: string;
        uses?: string;
        group?: string[];
      }) => {
        if (o.expires !== undefined && o.expiresIn !== undefined)
          throw new DwError('DW_ERR_USAGE', '--expires and --expires-in are the same option: give one');
        const uses =
          o.uses === undefined
            ? undefined
            : o.uses === 'unlimited'
              ? 'unlimited'
              : /^\d+$/.test(o.uses)
                ? Number(o.uses)
                : o.uses;
        const parsed = TokenRequestSchema.safeParse({
          name: o.name,
          role: o.role,
          expiresIn: o.expires ?? o.expiresIn,
          maxUses: uses,
          groups: o.group,
        });
        if (!parsed.success)
          throw new DwError(
            'DW_ERR_USAGE',
            parsed.error.issues
              .map((i) => `${TOKEN_FLAGS[String(i.path[0])] ?? String(i.path[0])}: ${i.message}`)
              .join('; '),
          );
        const config = loadControllerConfig(o.config);
        const store = await openStore(config.store);
        try {
          const r = await store.transaction((tx) =>
            createToken(tx, parsed.data, `cli:${process.env.USER ?? 'root'}`, new Date()),
          );
          out(`${r.secret}\n`);
          process.stderr.write(
            `token ${r.token.id} (${r.token.role}, "${r.token.name}"${describeLimits(r.token)}) created; the secret above is shown only once\n`,
          );
        } finally {
          await store.close();
        }
      },
    );

  /** `--config` reads the store directly (no API token needed, actor cli:$USER); otherwise the API (admin). */
  const local = (cmd: Command) =>
    remote(cmd).option('--config <file>', 'controller.yaml: use its store directly instead of the API');
  local(token.command('list').description('tokens, without their secrets: role, expiry, uses, groups, revoked')).action(
    async (o: { url?: string; token?: string; json?: boolean; config?: string }) => {
      let tokens: TokenRow[];
      if (o.config) {
        const store = await openStore(loadControllerConfig(o.config).store);
        try {
          tokens = await store.listTokens();
        } finally {
          await store.close();
        }
      } else tokens = (await api<{ tokens: TokenRow[] }>(apiTarget(o), 'GET', '/api/v1/tokens')).tokens;
      if (o.json) return out(JSON.stringify({ tokens }, null, 2) + '\n');
      const now = new Date().toISOString();
      const status = (t: TokenRow) =>
        (t.revokedAt
          ? 'revoked'
          : t.expiresAt && t.expiresAt <= now
            ? 'expired'
            : t.maxUses !== null && t.uses >= t.maxUses
              ? 'used up'
              : 'active') + (t.legacy ? ' (legacy)' : '');
      out(
        table([
          ['ID', 'NAME', 'ROLE', 'STATUS', 'EXPIRES', 'USES', 'GROUPS', 'CREATED BY'],
          ...tokens.map((t) => [
            t.id,
            t.name,
            t.role,
            status(t),
            t.expiresAt ?? 'never',
            t.role === 'agent' ? `${t.uses}/${t.maxUses ?? 'unlimited'}` : '',
            t.groups?.join(',') ?? '',
            t.createdBy,
          ]),
        ]),
      );
    },
  );
  local(
    token
      .command('revoke')
      .description('revoke a token now (its sessions end with it)')
      .argument('<id>', 'the token id, or a unique prefix of it (from token list)'),
  ).action(async (id: string, o: { url?: string; token?: string; json?: boolean; config?: string }) => {
    let r: { id: string; revokedAt: string };
    if (o.config) {
      const store = await openStore(loadControllerConfig(o.config).store);
      try {
        const full = resolveAmong('token', id, await store.listTokens());
        r = await revokeToken(store, full, `cli:${process.env.USER ?? 'root'}`, new Date().toISOString());
      } finally {
        await store.close();
      }
    } else {
      const target = apiTarget(o);
      const full = resolveAmong(
        'token',
        id,
        (await api<{ tokens: TokenRow[] }>(target, 'GET', '/api/v1/tokens')).tokens,
      );
      r = await api<{ id: string; revokedAt: string }>(target, 'DELETE', `/api/v1/tokens/${encodeURIComponent(full)}`);
    }
    out(o.json ? JSON.stringify(r, null, 2) + '\n' : `token ${r.id} revoked at ${r.revokedAt}\n`);
  });

  const hostsCmd = program
    .command('hosts')
    .description('list hosts (filter by state, image, group); hosts reset|forget|recheck HOST act on one');
  registerHostActionCommands(hostsCmd);
  remote(hostsCmd)
    .option('--state <state>')
    .option('--image <imageId>')
    .option('--group <group>')
    .option('--limit <n>', 'page size', '100')
    .action(
      async (o: {
        url?: string;
        token?: string;
        json?: boolean;
        state?: string;
        image?: string;
        group?: string;
        limit: string;
      }) => {
        const q = new URLSearchParams({ limit: o.limit });
        if (o.state) q.set('state', o.state);
        if (o.image) q.set('image', o.image);
        if (o.group) q.set('group', o.group);
        const r = await api<{ hosts: (HostRow & { identity?: string | null })[]; next: string | null }>(
          apiTarget(o),
          'GET',
          `/api/v1/hosts?${q}`,
        );
        if (o.json) return out(JSON.stringify(r, null, 2) + '\n');
        out(
          table([
            ['HOST', 'HOSTNAME', 'IMAGE', 'GROUP', 'STATE', 'DEVIATIONS', 'LAST SEEN', 'IDENTITY'],
            ...r.hosts.map((h) => [
              h.id,
              h.hostname ?? '',
              h.imageId,
              h.group ?? '',
              h.state,
              String(h.deviationCount),
              h.lastSeenAt ?? 'never',
              h.identity ?? '',
            ]),
          ]),
        );
        if (r.next) out(`(more: --limit or filter; next page after ${r.next})\n`);
      },
    );

  remote(
    program
      .command('report')
      .description(
        "`report HOST` prints one host's state, deviations (expected -> actual, and who made the change) and timeline; drift reports: `report host HOST|image ID|fleet --format json|csv|jsonl|html [--out FILE]`",
      )
      .argument('<what>', 'host | image | fleet, or a host (id, unique id prefix or hostname)')
      .argument('[id]', 'the host (id, prefix or hostname) or the image id'),
  )
    .option('--format <format>', `json | csv | jsonl | html (a drift report; html is its first page)`)
    .option('--out <file>', 'write the report to a file instead of stdout')
    .action(
      async (
        what: string,
        id: string | undefined,
        o: { url?: string; token?: string; json?: boolean; format?: string; out?: string },
      ) => {
        const scoped = (what === 'host' || what === 'image') && id !== undefined;
        if (!scoped && what !== 'fleet' && id !== undefined)
          throw new DwError(
            'DW_ERR_USAGE',
            `report ${what} ${id}: expected report host ID, report image ID or report fleet`,
          );
        if (what === 'image' && id === undefined) throw new DwError('DW_ERR_USAGE', 'report image: give the image id');
        if (scoped || what === 'fleet' || o.format !== undefined || o.out !== undefined) {
          const format = o.format ?? 'json';
          if (!(REPORT_FORMATS as readonly string[]).includes(format))
            throw new DwError('DW_ERR_USAGE', `--format: expected one of ${REPORT_FORMATS.join(', ')}, got ${format}`);
          const target = apiTarget(o);
          const q = new URLSearchParams({ scope: scoped ? what : what === 'fleet' ? 'fleet' : 'host', format });
          if (scoped) q.set('id', what === 'host' ? await resolveHost(target, id!) : id!);
          else if (what !== 'fleet') q.set('id', await resolveHost(target, what));
          const text = await apiText(target, `/api/v1/drift-report?${q}`);
          if (o.out) {
            writeFileSync(o.out, text);
            process.stderr.write(`report written to ${o.out} (${Buffer.byteLength(text)} bytes)\n`);
          } else out(text);
          return;
        }
        return hostReport(what, o);
      },
    );

  /** `report HOST`: the human-readable view of one host (kept from before drift reports). */
  const hostReport = async (given: string, o: { url?: string; token?: string; json?: boolean }) => {
    const target = apiTarget(o);
    const hostId = await resolveHost(target, given);
    const r = await api<{
      host: HostRow;
      deviations: HostDeviation[];
      timeline: { transitions: { at: string; from: string | null; to: string; cause: string; actor: string }[] };
    }>(target, 'GET', `/api/v1/hosts/${encodeURIComponent(hostId)}`);
    if (o.json) return out(JSON.stringify(r, null, 2) + '\n');
    const h = r.host;
    out(
      `host ${h.id} (${h.hostname ?? 'unnamed'}), image ${h.imageId}, group ${h.group ?? '-'}\nstate ${h.state} since ${h.stateSince}; last seen ${h.lastSeenAt ?? 'never'}\n`,
    );
    out(
      `identity ${h.cloudIdentity ? identityText(h.cloudIdentity) : 'none pinned'}${h.reportedCloudIdentity ? `; claims ${identityText(h.reportedCloudIdentity)} (refused)` : ''}\n\n`,
    );
    out(`deviations (${r.deviations.length}):\n`);
    for (const d of r.deviations) {
      out(`  ${d.action.padEnd(6)} ${d.severity.padEnd(8)} ${d.collector} ${d.change} ${d.key}\n`);
      for (const line of changeLines(d)) out(`      ${line}\n`);
      out(`      made by: ${d.attribution ? describeAttribution(d.attribution) : 'no record on the host'}\n`);
    }
    out('\ntimeline:\n');
    for (const t of r.timeline.transitions)
      out(`  ${t.at}  ${t.from ?? '(new)'} -> ${t.to}  ${t.cause}  [${t.actor}]\n`);
  };

  remote(program.command('exempt').description('exempt matching deviations for a limited time (reason required)'))
    .requiredOption('--key <glob>', 'deviation key pattern')
    .requiredOption('--reason <text>', 'why')
    .option('--host <host>', 'only this host (id, unique id prefix or hostname)')
    .option('--image <imageId>')
    .option('--collector <name>')
    .option('--for <duration>', 'how long, e.g. 72h (at most 90d)')
    .option('--expires-at <time>', 'ISO time instead of --for')
    .action(
      async (o: {
        url?: string;
        token?: string;
        json?: boolean;
        key: string;
        reason: string;
        host?: string;
        image?: string;
        collector?: string;
        for?: string;
        expiresAt?: string;
      }) => {
        const target = apiTarget(o);
        const r = await api<{ id: string; expiresAt: string }>(target, 'POST', '/api/v1/exemptions', {
          keyPattern: o.key,
          reason: o.reason,
          hostId: o.host === undefined ? undefined : await resolveHost(target, o.host),
          imageId: o.image,
          collector: o.collector,
          for: o.for,
          expiresAt: o.expiresAt,
        });
        out(o.json ? JSON.stringify(r, null, 2) + '\n' : `exemption ${r.id} active until ${r.expiresAt}\n`);
      },
    );

  const audit = program.command('audit').description('the audit log (list), and `audit verify` of its hash chain');
  audit
    .command('verify')
    .description(
      'check the hash chains of the audit log and the event stream, reading the store directly; exit 1 if a record was changed or removed',
    )
    .requiredOption('--config <file>', 'controller.yaml (for its store)')
    .option('--expect-audit-head <hash>', 'a head hash recorded earlier: also proves no rows were cut from the end')
    .option('--expect-events-head <hash>', 'the same for the event stream')
    .option(
      '--anchor <file|dir>',
      'an anchor from `audit anchor` (or a directory of anchor-*.json), kept outside the database: the chains must pass through each (catches a rewritten, rehashed chain)',
    )
    .option('--key <pub>', 'the public key every anchor must be signed with')
    .option(
      '--checkpoint-key <pub>',
      'the public key every retention checkpoint must be signed with (the audit.anchors.keyFile pair): catches a forged checkpoint',
    )
    .option('--json', 'print JSON')
    .action(
      async (o: {
        config: string;
        expectAuditHead?: string;
        expectEventsHead?: string;
        anchor?: string;
        key?: string;
        checkpointKey?: string;
        json?: boolean;
      }) => {
        if (o.key && !o.anchor)
          throw new DwError('DW_ERR_USAGE', '--key checks the signature of an anchor: give --anchor FILE too');
        const anchors = o.anchor ? readAnchors(o.anchor) : [];
        const pub = o.key ? loadPublicKey(o.key) : undefined;
        const notes = anchors.map(({ file, anchor }) => {
          const problem = pub ? anchorSignatureProblem(anchor, pub) : null;
          return {
            file,
            createdAt: anchor.createdAt,
            problem,
            signature: pub ? (problem ?? 'valid') : anchor.signature ? 'not checked (no --key)' : 'unsigned',
          };
        });
        const checkpointKey = o.checkpointKey ? loadPublicKey(o.checkpointKey) : undefined;
        const config = loadControllerConfig(o.config);
        const store = await openStore(config.store);
        try {
          const heads = { audit: o.expectAuditHead, events: o.expectEventsHead };
          const reports = anchors.length
            ? await verifyAgainstAnchor(
                store,
                anchors.map((a) => a.anchor),
                heads,
                { checkpointKey },
              )
            : [
                await verifyChain(store, 'audit', heads.audit, [], { checkpointKey }),
                await verifyChain(store, 'events', heads.events, [], { checkpointKey }),
              ];
          const ok = reports.every((r) => r.ok) && notes.every((n) => n.problem === null);
          if (o.json) {
            const anchorsOut = notes.map(({ problem: _p, ...n }) => n);
            out(
              JSON.stringify(
                {
                  ok,
                  chains: reports,
                  ...(anchors.length === 1 ? { anchor: anchorsOut[0] } : anchors.length ? { anchors: anchorsOut } : {}),
                },
                null,
                2,
              ) + '\n',
            );
          } else {
            for (const n of notes)
              out(`anchor ${n.file} of ${n.createdAt}: signature ${n.problem ? `BAD: ${n.problem}` : n.signature}\n`);
            out(reports.map(describeChainReport).join('\n') + '\n');
          }
          if (!ok) process.exitCode = 1;
        } finally {
          await store.close();
        }
      },
    );
  audit
    .command('anchor')
    .description(
      'verify the chains, then print (or write) an anchor of where they stand, to keep outside the database; sign it with --key',
    )
    .requiredOption('--config <file>', 'controller.yaml (for its store)')
    .option('--key <private>', 'an ed25519 private key (driftwarden keygen) to sign the anchor with')
    .option('--out <file>', 'write the anchor to this file (created, never overwritten) instead of stdout')
    .action(async (o: { config: string; key?: string; out?: string }) => {
      const key = o.key ? loadPrivateKey(o.key) : undefined;
      const config = loadControllerConfig(o.config);
      const store = await openStore(config.store);
      try {
        const { anchor } = await createAnchor(store, new Date(), key);
        const text = JSON.stringify(anchor, null, 2) + '\n';
        if (o.out) {
          try {
            writeFileSync(o.out, text, { flag: 'wx', mode: 0o644 });
          } catch (err) {
            throw new DwError(
              'DW_ERR_IO',
              `--out: cannot create ${o.out}: ${(err as NodeJS.ErrnoException).code ?? err}`,
              { path: o.out },
            );
          }
          process.stderr.write(
            `anchor written to ${o.out}: audit through row ${anchor.chains.audit.throughId}, events through row ${anchor.chains.events.throughId}${key ? ', signed' : ', unsigned'}; keep it outside the database\n`,
          );
        } else out(text);
      } finally {
        await store.close();
      }
    });
  remote(
    audit
      .command('list', { isDefault: true })
      .description('the audit log, newest first: who did what to which target, and the details (--json: raw rows)'),
  )
    .option('--limit <n>', 'rows', '100')
    .option('--before <id>', 'rows older than this audit id (the next page)')
    .action(async (o: { url?: string; token?: string; json?: boolean; limit: string; before?: string }) => {
      if (o.before !== undefined && !/^[1-9]\d*$/.test(o.before))
        throw new DwError('DW_ERR_USAGE', `--before ${o.before}: expected an audit id (a positive integer)`);
      // beforeId pages backwards from the newest row; the largest id the API takes starts at the top.
      const q = new URLSearchParams({ limit: o.limit, beforeId: o.before ?? String(Number.MAX_SAFE_INTEGER) });
      const r = await api<{
        audit: {
          id: number;
          at: string;
          actor: string;
          action: string;
          target: string | null;
          detail: Record<string, unknown>;
        }[];
        next: number | null;
      }>(apiTarget(o), 'GET', `/api/v1/audit?${q}`);
      if (o.json) return out(JSON.stringify(r, null, 2) + '\n');
      if (r.audit.length === 0) return out('no audit rows\n');
      out(
        table([
          ['ID', 'TIME', 'ACTOR', 'ACTION', 'TARGET', 'DETAIL'],
          ...r.audit.map((a) => [String(a.id), a.at, a.actor, a.action, a.target ?? '-', auditDetail(a.detail)]),
        ]),
      );
      if (r.next !== null) out(`(older rows: --before ${r.next})\n`);
    });

  registerReplacementCommands(program);
  registerRetentionCommands(program);
  registerFindingCommands(program);

  return program;
}

export async function main(argv: string[]): Promise<void> {
  await runProgram(buildProgram(), argv);
}

/** An audit row's detail as `key=value` pairs (nested values as JSON), cut to a readable width. */
function auditDetail(detail: Record<string, unknown>): string {
  const text = Object.entries(detail)
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ')
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ');
  return text.length > 120 ? `${text.slice(0, 119)}…` : text || '-';
}

/** One line for a cloud identity, as `hosts` and `report HOST` print it. */
function identityText(i: CloudIdentity): string {
  if (i.kind === 'aws')
    return `aws instance ${i.instanceId} (account ${i.accountId}, ${i.availabilityZone}, ${i.imageId})`;
  if (i.kind === 'kubernetes') return `kubernetes node ${i.nodeName}${i.providerId ? ` (${i.providerId})` : ''}`;
  return `machine-id ${i.machineId}`;
}
