import { Body, Controller, Get, HttpCode, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiTags } from '@nestjs/swagger';
import { ApiProblems } from '../common/api-problems.decorator';
import { ListQueryDto } from '../common/list-query.dto';
import { Public, Roles } from './auth.decorators';
import { AdminUserDto, AdminUserListDto, CreateAdminUserDto, LoginDto, TokenDto } from './auth.dto';
import { AuthService } from './auth.service';

@ApiTags('admin: auth')
@ApiProblems(503)
@Controller('v1')
export class AuthController {
  constructor(private readonly auth: AuthService) {}

  /** Exchange an admin's email and password for a JWT. Use it with "Authorize" → `admin-jwt`. */
  @Public()
  @Post('auth/login')
  @HttpCode(200)
  @ApiBody({
    type: LoginDto,
    examples: { admin: { summary: 'An admin', value: { email: 'admin@example.com', password: 'change-me-please' } } },
  })
  @ApiProblems(400, [401, 'Wrong email or password: `unauthorized`'])
  login(@Body() body: LoginDto): Promise<TokenDto> {
    return this.auth.login(body.email, body.password);
  }

  /** Create an admin or billing user. */
  @ApiBearerAuth('admin-jwt')
  @Roles('admin')
  @Post('admin/users')
  @ApiProblems(400, 401, [403, 'The role may not do this: `forbidden`'], [409, 'The email is taken: `conflict`'])
  createUser(@Body() body: CreateAdminUserDto): Promise<AdminUserDto> {
    return this.auth.createUser(body.email, body.password, body.role);
  }

  /** List the admin and billing users, newest first. */
  @ApiBearerAuth('admin-jwt')
  @Roles('admin')
  @Get('admin/users')
  @ApiProblems(400, 401, [403, 'The role may not do this: `forbidden`'])
  listUsers(@Query() q: ListQueryDto): Promise<AdminUserListDto> {
    return this.auth.listUsers(q.limit ?? 50, q.cursor);
  }
}
