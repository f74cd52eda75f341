import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsDateString,
  IsIn,
  IsOptional,
  IsString,
  MaxLength,
  MinLength,
  ValidateNested,
} from 'class-validator';
import { ListQueryDto } from '../common/list-query.dto';
import { IsReadableInstant } from '../common/validation';
import { MessageDto, PUBLIC_STATUSES } from './message.dto';

/** Texts longer than this are refused before segment counting (10 UCS-2 segments are 670 units). */
export const MAX_TEXT_LENGTH = 1600;

/** One message of a batch (and the base of a single send). */
export class BatchItemDto {
  /**
   * Indonesian mobile number: `+62…`, `62…` or `08…`; spaces, dashes and parentheses are ignored.
   * @example "081234567890"
   */
  @IsString()
  @MinLength(1)
  @MaxLength(32)
  to: string;

  /**
   * The text, at most 1,600 characters and 10 segments. GSM-7 texts take 160 characters per SMS (153 when
   * split), others 70 (67). In a batch, a text that is too long is rejected by its index.
   * @example "Kode OTP Anda 123456"
   */
  @IsString()
  @MinLength(1)
  // No @MaxLength here: a batch lists a text too long in `rejected` (MessagesService.prepare), like one of too
  // many segments, instead of refusing all items; SendMessageDto refuses it as a 400 on `text`.
  text: string;

  /**
   * Your own reference, returned with the message and in webhooks; filterable.
   * @example "order-1234"
   */
  @IsOptional()
  @IsString()
  @MaxLength(100)
  reference?: string;
}

export class SendMessageDto extends BatchItemDto {
  /**
   * The text, at most 1,600 characters and 10 segments. GSM-7 texts take 160 characters per SMS (153 when
   * split), others 70 (67).
   * @example "Kode OTP Anda 123456"
   */
  // class-validator drops a parent's rules for a property the subclass decorates again: all of them here.
  @IsString()
  @MinLength(1)
  @MaxLength(MAX_TEXT_LENGTH)
  declare text: string;

  /**
   * Schedule: an ISO 8601 instant (UTC, or with an offset such as `+07:00` for Jakarta time), in the future,
   * at most 35 days ahead. The message is charged now, refunded if canceled.
   * @example "2030-01-15T02:00:00Z"
   */
  @IsOptional()
  @IsDateString({ strict: true })
  @IsReadableInstant()
  sendAt?: string;
}

export class SendBatchDto {
  /** 1 to 1,000 messages, charged in order while the balance lasts. */
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(1000)
  @ValidateNested({ each: true })
  @Type(() => BatchItemDto)
  messages: BatchItemDto[];
}

export class PreviewDto {
  /**
   * Optional: checked and normalised like on send.
   * @example "081234567890"
   */
  @IsOptional()
  @IsString()
  @MinLength(1)
  @MaxLength(32)
  to?: string;

  /** @example "Halo! Pesanan Anda sudah dikirim 🚚" */
  @IsString()
  @MinLength(1)
  @MaxLength(MAX_TEXT_LENGTH)
  text: string;
}

export class PreviewResultDto {
  encoding: 'GSM-7' | 'UCS-2';
  segments: number;
  /** What a send would be charged now. */
  price: number;
  /** Characters (Unicode code points). */
  characters: number;
  /** The characters that forced UCS-2, if any. */
  nonGsmCharacters: string[];
  /** The normalised number, when `to` was given. */
  to?: string;
}

export class RejectedItemDto {
  /** Position of the item in `messages` (0-based). */
  index: number;
  /** The problem code a single send would have answered, e.g. `invalid_msisdn`, `insufficient_balance`. */
  code: string;
  detail: string;
}

export class BatchResultDto {
  /** Accepted items, charged and queued, in request order. */
  accepted: MessageDto[];
  /** Refused items (nothing charged for them). */
  rejected: RejectedItemDto[];
}

export class ListMessagesQueryDto extends ListQueryDto {
  @IsOptional()
  @IsIn(PUBLIC_STATUSES)
  status?: string;

  /** Destination, normalised the same way as on send. */
  @IsOptional()
  @IsString()
  @MaxLength(32)
  to?: string;

  /** Exactly this reference. */
  @IsOptional()
  @IsString()
  @MaxLength(100)
  reference?: string;

  /**
   * Created at or after this instant: ISO 8601, UTC unless it carries an offset. A bare `YYYY-MM-DD`
   * means 00:00 UTC; for a Jakarta day use e.g. `2026-11-30T00:00:00+07:00`.
   * @example "2026-11-30T00:00:00+07:00"
   */
  @IsOptional()
  @IsDateString({ strict: true })
  @IsReadableInstant()
  createdFrom?: string;

  /**
   * Created at or before this instant (inclusive); same format and calendar as `createdFrom`.
   * @example "2026-11-30T23:59:59+07:00"
   */
  @IsOptional()
  @IsDateString({ strict: true })
  @IsReadableInstant()
  createdTo?: string;
}
