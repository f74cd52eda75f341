import { Controller, Get, Param, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiProblems } from '../common/api-problems.decorator';
import { Roles } from '../auth/auth.decorators';
import { ListQueryDto } from '../common/list-query.dto';
import {
  ProviderReportDto,
  ProviderReportQueryDto,
  ReconciliationDto,
  ReconciliationPageDto,
} from './report-reconciliations.dto';
import { ReportReconciliationsService } from './report-reconciliations.service';

/**
 * The provider report reconciled against our records (docs/dlr.md "Reconciliation summaries"). Under the
 * provider account's path, served by src/dlr: the reconciliation applies reports, which is this module's.
 */
@ApiTags('admin: provider accounts')
@ApiProblems(401, [403, 'The role may not do this: `forbidden`'], 503)
@ApiBearerAuth('admin-jwt')
@Roles('admin', 'billing')
@Controller('v1/admin/provider-accounts')
export class ReportReconciliationsController {
  constructor(private readonly reconciliations: ReportReconciliationsService) {}

  /**
   * The provider's own report (`reports_post.php`) for a date range, reconciled against Gerbang's messages
   * now: final statuses that never arrived are applied, and the summary (with the mismatches) is kept and returned.
   */
  @Get(':id/report')
  @ApiOperation({
    description:
      '`start` and `end` are Asia/Jakarta calendar days (`YYYY-MM-DD`, `end` inclusive, at most 31 days): the provider reports by Jakarta day, and so does the reconciliation. Mismatches: `unknown` (ids the provider lists that no message carries), `statusDiffers` (both final, different), `moreParts` (the provider counted more SMS than the segments charged), `missing` (our sends it does not list); each list holds the first 1,000, `counts` the totals.',
  })
  @ApiProblems(400, 404, [409, 'The provider did not return a report: `conflict`'], 502)
  report(@Param('id') id: string, @Query() q: ProviderReportQueryDto): Promise<ProviderReportDto> {
    return this.reconciliations.report(id, q.start, q.end);
  }

  /** The account's kept reconciliations (daily and on demand), newest first, with their counts. */
  @Get(':id/reconciliations')
  @ApiProblems(400, 404)
  list(@Param('id') id: string, @Query() q: ListQueryDto): Promise<ReconciliationPageDto> {
    return this.reconciliations.list(id, q);
  }

  /** One kept reconciliation with its mismatches. */
  @Get(':id/reconciliations/:reconciliationId')
  @ApiProblems(404)
  get(@Param('id') id: string, @Param('reconciliationId') reconciliationId: string): Promise<ReconciliationDto> {
    return this.reconciliations.get(id, reconciliationId);
  }
}
