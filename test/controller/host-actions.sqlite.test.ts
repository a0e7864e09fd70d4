/** @module The host-actions suite on SQLite (a file, as in production). */
import { join } from 'node:path';
import { openStore } from '../../controller/store/index.js';
import { tempDir } from '../helpers/tmp.js';
import { runHostActionSuite } from './host-actions.suite.js';

runHostActionSuite('sqlite', () => openStore(`sqlite:${join(tempDir('dw-hostact-'), 'controller.db')}`));
