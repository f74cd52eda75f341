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
import { ListQueryDto } from '../common/pagination';

/** Texts longer than this are refused before segment counting (10 UCS-2 segments are 670 units). */
export const MAX_TEXT_LENGTH = 1600;

/** One message of a batch (and the base of a single send). */
export class BatchItemDto {
  /** Indonesian mobile number: `+62…`, `62…` or `08…`; spaces, dashes and parentheses are ignored. */
  @IsString()
  @MinLength(1)
  @MaxLength(32)
  to: string;

  /** The text. GSM-7 texts take 160 characters per SMS (153 when split), others 70 (67). */
  @IsString()
  @MinLength(1)
  @MaxLength(MAX_TEXT_LENGTH)
  text: string;

  /** Your own reference, returned with the message and in webhooks; filterable. */
  @IsOptional()
  @IsString()
  @MaxLength(100)
  reference?: string;
}

export class SendMessageDto extends BatchItemDto {
  /** Schedule: ISO 8601, in the future, at most 35 days ahead. The message is charged now, refunded if canceled. */
  @IsOptional()
  @IsDateString({ strict: true })
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
  @IsOptional()
  @IsString()
  @MinLength(1)
  @MaxLength(32)
  to?: string;

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
  index: number;
  code: string;
  detail: string;
}

export class BatchResultDto {
  accepted: import('./message.view').MessageDto[];
  rejected: RejectedItemDto[];
}

export class ListMessagesQueryDto extends ListQueryDto {
  @IsOptional()
  @IsIn(['scheduled', 'queued', 'submitted', 'pending', 'delivered', 'failed', 'canceled', 'expired'])
  status?: string;

  /** Destination, normalised the same way as on send. */
  @IsOptional()
  @IsString()
  @MaxLength(32)
  to?: string;

  @IsOptional()
  @IsString()
  @MaxLength(100)
  reference?: string;

  @IsOptional()
  @IsDateString({ strict: true })
  createdFrom?: string;

  @IsOptional()
  @IsDateString({ strict: true })
  createdTo?: string;
}
