/**
 * What the packages and the bake examples put in /etc/driftwarden is a config the agent and the
 * controller accept, and points where the units and the examples expect.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ControllerConfigSchema } from '../../controller/config.js';
import { parseConfigText } from '../../shared/config-load.js';
import { AgentConfigSchema } from '../../shared/schema/config.js';

const PKG = join(import.meta.dirname, '../../packaging');
const read = (rel: string) => readFileSync(join(PKG, rel), 'utf8');

describe('the shipped configs', () => {
  it('agent.yaml is valid and names the manifest and state directory the unit expects', () => {
    const config = parseConfigText(AgentConfigSchema, read('config/agent.yaml'), 'agent.yaml');
    const unit = read('systemd/driftwarden-agent.service');
    expect(unit).toContain(`ConditionPathExists=${config.manifest}`);
    expect(unit).toMatch(new RegExp(`^ReadWritePaths=${config.stateDir}$`, 'm'));
    expect(config.controller).toBeUndefined();
    // Verified on the host by default: a manifest not signed by the bake key is refused at start.
    expect(config.trustedKeys).toEqual(['/etc/driftwarden/keys/bake.pub']);
    expect(config.identity.mode).toBe('auto');
  });

  it("controller.yaml is valid and keeps its SQLite store in the unit's state directory", () => {
    const config = parseConfigText(ControllerConfigSchema, read('config/controller.yaml'), 'controller.yaml');
    expect(config.store).toBe('sqlite:/var/lib/driftwarden-controller/controller.db');
    expect(read('systemd/driftwarden-controller.service')).toMatch(/^StateDirectory=driftwarden-controller$/m);
  });
});

describe('the bake examples', () => {
  it('Packer: the controller block it appends makes a valid agent config that reads the cloud-init token', () => {
    const hcl = read('examples/packer/driftwarden.pkr.hcl');
    const printf = /"printf '([^']*)' '\$\{var\.driftwarden_url\}'/.exec(hcl);
    expect(printf).not.toBeNull();
    const appended = printf![1]!.replaceAll('\\\\n', '\n').replace('%s', 'https://drift.example.internal:8443');
    const config = parseConfigText(AgentConfigSchema, read('config/agent.yaml') + appended, 'agent.yaml');
    const userData = parse(read('examples/cloud-init/user-data.yaml')) as {
      write_files: { path: string; permissions: string }[];
    };
    const token = userData.write_files.find((f) => f.path === config.controller?.enrollmentTokenFile);
    expect(token?.permissions).toBe('0600');
  });

  it('sign with a key passed in at build time, never copied into the image', () => {
    const dockerfile = read('examples/docker/Dockerfile');
    expect(dockerfile).toMatch(
      /--mount=type=secret,id=driftwarden_bake_key[^\n]*\n[^]*--sign-key \/run\/secrets\/bake\.key/,
    );
    expect(dockerfile).not.toMatch(/^(COPY|ADD)\b.*\.key/m);
    const hcl = read('examples/packer/driftwarden.pkr.hcl');
    expect(hcl).toContain('--sign-key /run/driftwarden-bake/bake.key');
    expect(hcl).toContain("trap 'sudo rm -rf /run/driftwarden-bake' EXIT");
    // Both write the bake key's public half where the shipped agent.yaml trusts it, before the manifest.
    const pub = parseConfigText(AgentConfigSchema, read('config/agent.yaml'), 'agent.yaml').trustedKeys![0]!;
    expect(dockerfile).toContain(`openssl pkey -in /run/secrets/bake.key -pubout -out ${pub}`);
    expect(hcl).toContain(`openssl pkey -in /run/driftwarden-bake/bake.key -pubout -out ${pub}`);
    expect(dockerfile.indexOf(pub)).toBeLessThan(dockerfile.indexOf('manifest build'));
    expect(hcl.indexOf(pub)).toBeLessThan(hcl.indexOf('manifest build'));
    // The manifest is the last thing built: no provisioner that changes the image comes after it.
    const afterBuild = hcl.slice(hcl.indexOf('manifest build'));
    expect(afterBuild).not.toMatch(/apt-get|provisioner "shell"/);
  });
});
