// Billing's public pure rules, for other modules (services are imported from their *.service.ts files).
export { ChargePolicy, messagePrice } from './charge-policy';
export type { ChargeableTenant } from './charge-policy';
