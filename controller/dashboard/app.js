// Entry point: each page registers itself on import, in the order the navigation shows them. A new
// page (the replacement queue) is one module and one import line here.
import { start } from './core.js';
import './overview.js';
import './hosts.js';
import './findings.js';
import './host.js';
import './exemptions.js';
import './replacements.js';
import './audit.js';

void start();
