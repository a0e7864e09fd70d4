/** @module The agent side of the CLI: keygen, manifest build|verify, check. Loaded on demand by cli.ts. */
import { Command, Option } from 'commander';
import { DwError } from '../shared/errors.js';
import { runProgram } from '../shared/cli-run.js';
import type { AgentConfig } from '../shared/schema/config.js';
import { createLogger } from './log.js';
import { AGENT_VERSION } from './version.js';

// Each command loads what it needs when it runs: `driftwarden agent`, which stays up for months, loads
// none of the scanning code (collectors, manifest verification, zod schemas); its task processes do.
const configLoader = async () => {
  const [{ loadConfigFile }, { AgentConfigSchema }] = await Promise.all([
    import('../shared/config-load.js'),
    import('../shared/schema/config.js'),
  ]);
  return (file: string): AgentConfig => loadConfigFile(AgentConfigSchema, file);
};

const collect = (value: string, previous: string[] = []) => [...previous, value];

function out(text: string): void {
  process.stdout.write(text);
}

export function buildProgram(): Command {
  const program = new Command('driftwarden')
    .description('drift detection for immutable infrastructure')
    .version(AGENT_VERSION, '-V, --version')
    // `manifest build --version 1.2.0` is the image's version, not a request for ours.
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`driftwarden: ${str.replace(/^error: /, '')}`) });

  program
    .command('keygen')
    .description('create an ed25519 key pair for signing manifests (NAME.key is written 0600, NAME.pub 0644)')
    .requiredOption('--out <dir>', 'directory to write the keys to')
    .option('--name <name>', 'file name of the pair', 'bake')
    .option('--force', 'replace existing key files')
    .action(async (o: { out: string; name: string; force?: boolean }) => {
      const { keygen } = await import('./commands/keygen.js');
      const r = keygen(o);
      out(
        `private key ${r.privateKeyFile} (keep it off the image)\npublic key  ${r.publicKeyFile}\nkey id      ${r.keyId}\n`,
      );
    });

  const manifest = program.command('manifest').description('build and verify image manifests');
  manifest
    .command('build')
    .description('record what a root contains in a manifest (the last step of an image bake)')
    .option('--root <dir>', 'root directory of the image or host', '/')
    .requiredOption('--image-id <id>', 'image id the manifest describes (AMI id, image digest, build id)')
    .option('--name <name>', 'image name')
    .option('--version <version>', 'image version')
    .option('--source <source>', 'where the image was built from (commit, template, pipeline URL)')
    .option('--config <file>', 'agent config: file roots, ignore globs, sysctl excludes, collectors on/off')
    .option(
      '--sign-key <file>',
      'ed25519 private key (PEM) to sign with; the signature is embedded and written to OUT.sig',
    )
    .option('--cache <file>', 'stat cache to use and update (speeds up repeated builds of the same root)')
    .requiredOption('--out <file>', 'where to write the manifest')
    .action(
      async (o: {
        root: string;
        imageId: string;
        name?: string;
        version?: string;
        source?: string;
        config?: string;
        signKey?: string;
        cache?: string;
        out: string;
      }) => {
        const [{ buildManifest, sourceDateEpoch }, { terminalProgress }] = await Promise.all([
          import('./commands/manifest.js'),
          import('./progress.js'),
        ]);
        const progress = terminalProgress();
        const createdAt = sourceDateEpoch();
        const r = await buildManifest({ ...o, createdAt, log: createLogger(), progress }).finally(() =>
          progress?.end(),
        );
        const m = r.manifest;
        const counts = Object.entries(m.sections)
          .map(([k, s]) => `${k} ${s?.items.length ?? 0}`)
          .join(', ');
        out(
          `wrote ${o.out}: image ${m.image.id}, ${r.items} items (${counts})\n` +
            `digest ${m.digests.overall}\n` +
            (m.signature
              ? `signed by key ${m.signature.keyId}; detached signature ${r.signatureFile}\n`
              : 'unsigned (pass --sign-key to sign)\n'),
        );
      },
    );
  manifest
    .command('verify')
    .description('check a manifest: schema and digests always; with --pubkey, a valid signature by that key')
    .argument('<file>', 'manifest file')
    .option('--pubkey <file>', 'trusted ed25519 public key (PEM); repeat for several', collect)
    .option('--signature <file>', 'detached signature (default: FILE.sig when the manifest has none embedded)')
    .action(async (file: string, o: { pubkey?: string[]; signature?: string }) => {
      const { loadVerifiedManifest } = await import('./commands/manifest.js');
      const { manifest: m, verified } = loadVerifiedManifest(file, { pubkeys: o.pubkey, signature: o.signature });
      const counts = Object.entries(m.sections)
        .map(([k, s]) => `${k} ${s?.items.length ?? 0}`)
        .join(', ');
      out(
        `${file}: valid\nimage ${[m.image.id, m.image.name, m.image.version].filter(Boolean).join(' ')}, built ${m.createdAt}\n` +
          `sections: ${counts}\ndigest ${verified.digest}\n` +
          (verified.signedBy
            ? `signature: valid, key ${verified.signedBy}\n`
            : 'signature: not checked (no --pubkey)\n'),
      );
    });

  manifest
    .command('publish')
    .description('upload a manifest to the controller, which checks its signature and keys it by image id')
    .argument('<file>', 'manifest file (a detached FILE.sig beside it is sent too)')
    .option('--url <url>', 'controller URL (default $DRIFTWARDEN_URL)')
    .option('--token <token>', 'API token with the operator role (default $DRIFTWARDEN_TOKEN)')
    .action(async (file: string, o: { url?: string; token?: string }) => {
      const { existsSync } = await import('node:fs');
      const { loadDetachedSignature, loadManifest } = await import('../shared/manifest.js');
      const m = loadManifest(file);
      const sigFile = `${file}.sig`;
      const signature = !m.signature && existsSync(sigFile) ? loadDetachedSignature(sigFile) : undefined;
      // Loaded here only: its HTTP client (undici) would otherwise sit in every agent's memory.
      const { api, apiTarget } = await import('../shared/api-client.js');
      const r = await api<{ imageId: string; digest: string; signedBy: string | null; status: string }>(
        apiTarget(o),
        'POST',
        '/api/v1/manifests',
        { manifest: m, signature },
      );
      out(
        `${r.status === 'stored' ? 'published' : 'already published'}: image ${r.imageId}, digest ${r.digest}, ${r.signedBy ? `signed by ${r.signedBy}` : 'unsigned'}\n`,
      );
    });

  program
    .command('check')
    .description('diff a root against its manifest: exit 0 clean, 1 drift found, 2 error')
    .option('--manifest <file>', "manifest to check against (default: the config's manifest)")
    .option('--root <dir>', "root directory to check (default: the config's root, else /)")
    .option('--config <file>', 'agent config (manifest, root and state directory)')
    .option('--pubkey <file>', 'trusted ed25519 public key; requires a valid signature', collect)
    .option('--signature <file>', 'detached signature (default: MANIFEST.sig)')
    .option(
      '--cache <file>',
      'stat cache: unchanged files are not re-read (default: STATE_DIR/stat-cache with --config)',
    )
    .option('--full-rehash', 'read every file even if the stat cache says it is unchanged')
    .option('--json', 'print the result as JSON (driftwarden/check/v1)')
    .addOption(new Option('--no-color', 'no ANSI colours in human output'))
    .action(
      async (o: {
        manifest?: string;
        root?: string;
        config?: string;
        pubkey?: string[];
        signature?: string;
        cache?: string;
        fullRehash?: boolean;
        json?: boolean;
        color: boolean;
      }) => {
        const [{ check, checkExitCode }, { formatCheck }, { terminalProgress }, { canonicalJson }] = await Promise.all([
          import('./commands/check.js'),
          import('./format.js'),
          import('./progress.js'),
          import('../shared/canonical.js'),
        ]);
        const config: AgentConfig | undefined = o.config ? (await configLoader())(o.config) : undefined;
        const manifestFile = o.manifest ?? config?.manifest;
        if (!manifestFile)
          throw new DwError('DW_ERR_USAGE', 'no manifest: pass --manifest FILE (or a config with `manifest:`)');
        const progress = o.json ? undefined : terminalProgress();
        const result = await check({
          manifest: manifestFile,
          root: o.root ?? config?.root ?? '/',
          pubkeys: o.pubkey ?? config?.trustedKeys,
          signature: o.signature,
          cache: o.cache,
          stateDir: config?.stateDir,
          fullRehash: o.fullRehash,
          log: createLogger(),
          progress,
        }).finally(() => progress?.end());
        out(o.json ? canonicalJson(result) + '\n' : formatCheck(result, o.color && Boolean(process.stdout.isTTY)));
        process.exitCode = checkExitCode(result);
      },
    );

  const agent = program
    .command('agent')
    .description('run the agent: enroll, scan on schedule, watch hot paths, deliver reports through a durable spool')
    .option('--config <file>', 'agent config', '/etc/driftwarden/agent.yaml')
    .option('--once', 'scan and report once, then exit (0 delivered, 2 left spooled)')
    .action(async (o: { config: string; once?: boolean }) => {
      const log = createLogger(process.env.DRIFTWARDEN_LOG_LEVEL ?? 'info');
      const [{ AgentService }, { unlockStateDir }] = await Promise.all([
        import('./daemon/agent.js'),
        import('./daemon/state-lock.js'),
      ]);
      const service = new AgentService(o.config, log);
      // The prepare task validates the config and takes the state directory's lock for this process.
      await service.init();
      const stateDir = service.agentConfig.stateDir;
      process.once('exit', () => unlockStateDir(stateDir));
      if (o.once) {
        const rejectedBefore = service.rejectedCount();
        await service.scan(false);
        const left = service.spoolDepth();
        const refused = service.rejectedCount() - rejectedBefore;
        const refusal = service.credentialRefusal;
        await service.stop();
        if (left.reports > 0 && refusal) {
          throw new DwError(
            'DW_ERR_UNAUTHORIZED',
            `the controller refuses this host's credential (${refusal.reason}; re-enrollment: ${refusal.reenroll}); ${left.reports} report(s) stay spooled in ${stateDir}/spool`,
          );
        }
        if (left.reports > 0)
          throw new DwError(
            'DW_ERR_IO',
            `${left.reports} report(s) stay spooled in ${stateDir}/spool: the controller did not take them (see the log); the next run sends them`,
          );
        if (refused > 0)
          throw new DwError(
            'DW_ERR_IO',
            `the controller refused ${refused} report(s); they are in ${stateDir}/spool/rejected with its reasons`,
          );
        out('scan reported\n');
        return;
      }
      // Handlers go in before the first scan, which can take minutes on a large host.
      const stopped = new Promise<void>((resolve) => {
        process.on('SIGHUP', () => {
          // The new config is validated (and its manifest verified) by a task before anything stops:
          // one that cannot run keeps the running one.
          service.reload().then(
            () => log.info('SIGHUP: config reloaded'),
            (err: unknown) =>
              err instanceof DwError && err.context.phase === 'config'
                ? log.error({ err }, 'SIGHUP: the new config is invalid; keeping the running one')
                : log.error({ err }, 'SIGHUP: reload failed'),
          );
        });
        const stop = (signal: string) => {
          log.info({ signal }, 'stopping: finishing the current scan and send');
          service.stop().then(resolve, resolve);
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
      await service.start();
      log.info({ root: service.agentConfig.root, controller: service.agentConfig.controller?.url }, 'agent running');
      await stopped;
    });
  agent
    .command('task', { hidden: true })
    .description('the agent runs its heavy work in this (started by the agent itself)')
    .action(async () => {
      const { runTaskProcess } = await import('./daemon/task.js');
      await runTaskProcess();
    });
  agent
    .command('status')
    .description('the last scan, spool depth, enrollment and controller reachability')
    .option('--config <file>', 'agent config', '/etc/driftwarden/agent.yaml')
    .action(async (o: { config: string }) => {
      const { agentStatus } = await import('./daemon/status.js');
      const status = await agentStatus((await configLoader())(o.config));
      out(JSON.stringify(status, null, 2) + '\n');
    });

  return program;
}

export async function main(argv: string[]): Promise<void> {
  await runProgram(buildProgram(), argv);
}
