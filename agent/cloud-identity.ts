/**
 * @module Where this host runs: AWS (IMDSv2: a session token first, then the instance identity
 * document and its signature), a Kubernetes node (the downward API's NODE_NAME, and NODE_PROVIDER_ID
 * when the pod spec passes spec.providerID... through a configured env), or a plain host (machine-id).
 *
 * IMDS is contacted only when asked (`aws`) or once in `auto`, and the whole exchange shares one short
 * deadline (1 s by default): a plain host must not wait on an address nobody answers. The answer,
 * including "no IMDS here", is kept in the state directory so later starts do not probe again.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { DwError } from '../shared/errors.js';
import {
  AwsIdentityDocumentSchema,
  AwsIdentityProofSchema,
  CloudIdentitySchema,
  type AwsIdentityProof,
  type CloudIdentity,
} from '../shared/schema/identity.js';
import { writeFileAtomic } from './atomic-write.js';

export type CloudIdentityMode = 'auto' | 'aws' | 'kubernetes' | 'host';

export interface CloudIdentityOptions {
  mode: CloudIdentityMode;
  /** Default http://169.254.169.254; tests point it at a fake IMDS on 127.0.0.1. */
  imdsEndpoint?: string;
  /** The deadline of the whole IMDS exchange (token, document, signature). */
  imdsTimeoutMs?: number;
  /** The host's machine-id (agent/identity.ts readHostId), the plain-host identity. */
  machineId: string;
  env?: NodeJS.ProcessEnv;
  /** Where the answer is cached; without one every call reads again. */
  stateDir?: string;
}

export interface ReadIdentity {
  identity: CloudIdentity;
  /** Only for AWS: the signed document, for enrollment by identity. */
  awsProof?: AwsIdentityProof;
  /** Why `auto` fell back to a plain host, for the log. */
  fallback?: string;
}

export const DEFAULT_IMDS_ENDPOINT = 'http://169.254.169.254';
export const DEFAULT_IMDS_TIMEOUT_MS = 1000;
/** IMDSv2 session tokens live at most 6 hours; the agent needs one for three requests. */
const TOKEN_TTL_SECONDS = 60;
const CACHE_FILE = 'cloud-identity.json';

const CacheSchema = z.strictObject({
  mode: z.enum(['auto', 'aws', 'kubernetes', 'host']),
  identity: CloudIdentitySchema,
  awsProof: AwsIdentityProofSchema.optional(),
});

export async function readCloudIdentity(opts: CloudIdentityOptions): Promise<ReadIdentity> {
  const env = opts.env ?? process.env;
  // The node name is the pod's own statement and costs nothing to read: it wins over a cache.
  if (opts.mode === 'kubernetes' || (opts.mode === 'auto' && env.NODE_NAME))
    return { identity: kubernetesIdentity(env) };
  if (opts.mode === 'host') return { identity: { kind: 'host', machineId: opts.machineId } };
  const cached = readCache(opts);
  if (cached) return cached;
  let read: ReadIdentity;
  if (opts.mode === 'aws') {
    read = await readAws(opts);
  } else {
    try {
      read = await readAws(opts);
    } catch (err) {
      // Documented fallback: `auto` on a machine without IMDS is a plain host, said once in the log.
      read = { identity: { kind: 'host', machineId: opts.machineId }, fallback: (err as Error).message };
    }
  }
  writeCache(opts, read);
  return read;
}

function kubernetesIdentity(env: NodeJS.ProcessEnv): CloudIdentity {
  const nodeName = env.NODE_NAME?.trim();
  if (!nodeName)
    throw new DwError(
      'DW_ERR_CONFIG',
      'identity.mode is kubernetes but NODE_NAME is not set: pass spec.nodeName to the agent through the downward API (env NODE_NAME)',
    );
  const providerId = env.NODE_PROVIDER_ID?.trim();
  const parsed = CloudIdentitySchema.safeParse({ kind: 'kubernetes', nodeName, ...(providerId ? { providerId } : {}) });
  if (!parsed.success)
    throw new DwError(
      'DW_ERR_CONFIG',
      `NODE_NAME/NODE_PROVIDER_ID are not a usable node identity: ${parsed.error.issues[0]?.message}`,
    );
  return parsed.data;
}

/** IMDSv2: PUT a token, then the document and its signature, all within one deadline. */
export async function readAws(
  opts: Pick<CloudIdentityOptions, 'imdsEndpoint' | 'imdsTimeoutMs'>,
): Promise<ReadIdentity> {
  const base = (opts.imdsEndpoint ?? DEFAULT_IMDS_ENDPOINT).replace(/\/+$/, '');
  const timeoutMs = opts.imdsTimeoutMs ?? DEFAULT_IMDS_TIMEOUT_MS;
  const signal = AbortSignal.timeout(timeoutMs);
  const call = async (method: 'PUT' | 'GET', path: string, headers: Record<string, string>): Promise<string> => {
    let res: Response;
    try {
      res = await fetch(base + path, { method, headers, signal, redirect: 'error' });
    } catch (err) {
      const why = signal.aborted ? `no answer within ${timeoutMs} ms` : (err as Error).message;
      throw new DwError('DW_ERR_IO', `IMDS at ${base} ${method} ${path}: ${why}`, { endpoint: base, path });
    }
    const text = await res.text();
    if (!res.ok)
      throw new DwError('DW_ERR_IO', `IMDS at ${base} ${method} ${path} answered ${res.status}`, {
        endpoint: base,
        path,
        status: res.status,
      });
    if (text.length > 8192)
      throw new DwError(
        'DW_ERR_IO',
        `IMDS at ${base} ${path} answered ${text.length} characters; an identity document is under 1 KiB`,
      );
    return text;
  };
  const token = await call('PUT', '/latest/api/token', {
    'X-aws-ec2-metadata-token-ttl-seconds': String(TOKEN_TTL_SECONDS),
  });
  const auth = { 'X-aws-ec2-metadata-token': token.trim() };
  const document = await call('GET', '/latest/dynamic/instance-identity/document', auth);
  const signature = (await call('GET', '/latest/dynamic/instance-identity/signature', auth)).trim();
  let json: unknown;
  try {
    json = JSON.parse(document);
  } catch {
    throw new DwError('DW_ERR_IO', `IMDS at ${base} served an identity document that is not JSON`);
  }
  const doc = AwsIdentityDocumentSchema.safeParse(json);
  if (!doc.success)
    throw new DwError(
      'DW_ERR_IO',
      `IMDS at ${base} served an identity document without a usable ${doc.error.issues[0]?.path.join('.')}: ${doc.error.issues[0]?.message}`,
    );
  const proof = AwsIdentityProofSchema.safeParse({ document, signature });
  if (!proof.success)
    throw new DwError(
      'DW_ERR_IO',
      `IMDS at ${base} served an unusable identity signature: ${proof.error.issues[0]?.message}`,
    );
  const d = doc.data;
  return {
    identity: {
      kind: 'aws',
      instanceId: d.instanceId,
      accountId: d.accountId,
      region: d.region,
      availabilityZone: d.availabilityZone,
      imageId: d.imageId,
    },
    awsProof: proof.data,
  };
}

function readCache(opts: CloudIdentityOptions): ReadIdentity | null {
  if (!opts.stateDir) return null;
  try {
    const parsed = CacheSchema.safeParse(JSON.parse(readFileSync(join(opts.stateDir, CACHE_FILE), 'utf8')));
    // A cache made under another mode (the operator changed it) or for another machine is not an answer.
    if (!parsed.success || parsed.data.mode !== opts.mode) return null;
    if (parsed.data.identity.kind === 'host' && parsed.data.identity.machineId !== opts.machineId) return null;
    return { identity: parsed.data.identity, ...(parsed.data.awsProof ? { awsProof: parsed.data.awsProof } : {}) };
  } catch {
    return null;
  }
}

function writeCache(opts: CloudIdentityOptions, read: ReadIdentity): void {
  if (!opts.stateDir) return;
  mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
  const body = { mode: opts.mode, identity: read.identity, ...(read.awsProof ? { awsProof: read.awsProof } : {}) };
  writeFileAtomic(join(opts.stateDir, CACHE_FILE), JSON.stringify(body) + '\n', 0o600);
}

/**
 * The AMI the host booted from, held against the manifest: a manifest that names its AMI
 * (`image.cloudImageId`) and a host that booted another is an integrity finding, or null when they agree
 * or there is nothing to compare.
 */
export function imageMismatch(identity: CloudIdentity | undefined, cloudImageId: string | undefined): string | null {
  if (!identity || identity.kind !== 'aws' || !cloudImageId) return null;
  return identity.imageId === cloudImageId
    ? null
    : `the host booted ${identity.imageId}, the manifest is for ${cloudImageId}`;
}
