import { Module } from '@nestjs/common';
import { MessageReadsService } from './message-reads.service';

/** The messaging module's read door for modules MessagingModule depends on (provider): no imports, no cycle. */
@Module({
  providers: [MessageReadsService],
  exports: [MessageReadsService],
})
export class MessageReadsModule {}
