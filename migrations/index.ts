// Migrations are listed explicitly (no glob): the order is reviewed, and bundling/tests cannot miss one.
import { Initial1764000000000 } from './1764000000000-Initial';
import { Webhooks1764400000000 } from './1764400000000-Webhooks';

export const migrations = [Initial1764000000000, Webhooks1764400000000];
