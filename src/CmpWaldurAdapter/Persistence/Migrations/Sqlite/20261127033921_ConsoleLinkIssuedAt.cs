using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace CmpWaldurAdapter.Persistence.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class ConsoleLinkIssuedAt : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<long>(
                name: "console_link_issued_at",
                table: "buyer_web_settings",
                type: "INTEGER",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "console_link_issued_at",
                table: "buyer_web_settings");
        }
    }
}
