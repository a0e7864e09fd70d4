/** @module The scheduler suite on SQLite (a file: WAL and `begin immediate` as in production). */
import { join } from 'node:path';
import { openStore } from '../../../controller/store/index.js';
import { tempDir } from '../../helpers/tmp.js';
import { runSchedulerSuite } from './scheduler.suite.js';

runSchedulerSuite('sqlite', () => openStore(`sqlite:${join(tempDir('dw-sched-'), 'controller.db')}`));
