export { startSandbox, SANDBOX_BASE_PATH } from './sandbox';
export type { SandboxHandle, SandboxOptions, SentMessage } from './sandbox';
export { DEFAULT_KNOBS, normalizeKnobs } from './sandbox-knobs';
export type { SandboxKnobs } from './sandbox-knobs';
export type { SandboxAccountSpec, SandboxAccountView } from './sandbox-state';
export type { CallbackAttempt } from './dlr-dispatcher';
