/** @module The controller API contract on SQLite (in memory: the file store's own behaviour is in server.test.ts). */
import { openStore } from '../../controller/store/index.js';
import { runApiContract } from './api.contract.js';
import { runHostileInputContract } from './hostile-input.contract.js';

runApiContract('sqlite', () => openStore('sqlite::memory:'));
runHostileInputContract('sqlite', () => openStore('sqlite::memory:'));
