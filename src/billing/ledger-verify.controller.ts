import { Controller, Get } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Roles } from '../auth/auth.decorators';
import { LedgerVerifyDto } from './ledger-verify.dto';
import { LedgerVerifyService } from './ledger-verify.service';
import { ApiProblems } from '../common/api-problems.decorator';

@ApiTags('admin: billing')
@ApiBearerAuth('admin-jwt')
@ApiProblems(401, [403, 'The role may not do this: `forbidden`'], 503)
@Controller('v1/admin/ledger/verify')
export class LedgerVerifyController {
  constructor(private readonly verifier: LedgerVerifyService) {}

  @ApiOperation({
    summary: 'Check the books',
    description:
      'For every tenant: balance = sum of its ledger, each balance_after continues the previous entry, nothing ' +
      'negative, one debit per message equal to its price, each refundable message (failed or canceled, price > 0) ' +
      'refunded exactly once at its price and nothing else refunded. The same checks as `npm run ledger:verify`. ' +
      'At most 1,000 problems are listed per check.',
  })
  @Roles('admin')
  @Get()
  verify(): Promise<LedgerVerifyDto> {
    return this.verifier.verify();
  }
}
