export * from './provider-client';
export * from './provider-error';
export * from './http-provider-client';
export * from './provider-client-registry';
export * from './dlr-codes';
export {
  parseSendBody,
  parseReportBody,
  parseBalanceBody,
  parseCsvReport,
  parseCsv,
  parseInboxBody,
  parseJakartaDateTime,
  storableText,
  formatProviderDate,
  PROVIDER_ZONE,
} from './parsers';
export type {
  ParsedSendBody,
  ParsedReportBody,
  ParsedBalanceBody,
  ParsedCsvReport,
  ParsedInboxBody,
  ParsedInboxItem,
} from './parsers';
