import { Body, Controller, Get, HttpCode, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { Public, Roles } from '../common/decorators';
import { AdminUserDto, CreateAdminUserDto, LoginDto, TokenDto } from './auth.dto';
import { AuthService } from './auth.service';

@ApiTags('admin: auth')
@Controller('v1')
export class AuthController {
  constructor(private readonly auth: AuthService) {}

  /** Exchange an admin's email and password for a JWT. Use it with "Authorize" → `admin-jwt`. */
  @Public()
  @Post('auth/login')
  @HttpCode(200)
  login(@Body() body: LoginDto): Promise<TokenDto> {
    return this.auth.login(body.email, body.password);
  }

  /** Create an admin or billing user. */
  @ApiBearerAuth('admin-jwt')
  @Roles('admin')
  @Post('admin/users')
  createUser(@Body() body: CreateAdminUserDto): Promise<AdminUserDto> {
    return this.auth.createUser(body.email, body.password, body.role);
  }

  /** List the admin and billing users. */
  @ApiBearerAuth('admin-jwt')
  @Roles('admin')
  @Get('admin/users')
  async listUsers(): Promise<{ data: AdminUserDto[] }> {
    return { data: await this.auth.listUsers() };
  }
}
