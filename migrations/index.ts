// Migrations are listed explicitly (no glob): the order is reviewed, and bundling/tests cannot miss one.
import { Initial1764000000000 } from './1764000000000-Initial';
import { UsageIndexes1764500000000 } from './1764500000000-UsageIndexes';

export const migrations = [Initial1764000000000, UsageIndexes1764500000000];
