/** @module The pinned-identity suite on SQLite (a file, as in production). */
import { join } from 'node:path';
import { openStore } from '../../controller/store/index.js';
import { tempDir } from '../helpers/tmp.js';
import { runIdentitySuite } from './identity.suite.js';

runIdentitySuite('sqlite', () => openStore(`sqlite:${join(tempDir('dw-ident-'), 'controller.db')}`));
