using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace CmpWaldurAdapter.Persistence.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class BuyerWeb : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "buyer_web_settings",
                columns: table => new
                {
                    subscription_id = table.Column<Guid>(type: "TEXT", nullable: false),
                    console_link_version = table.Column<int>(type: "INTEGER", nullable: false),
                    allowed_domains = table.Column<string>(type: "TEXT", maxLength: 8000, nullable: false),
                    logo_content_type = table.Column<string>(type: "TEXT", maxLength: 40, nullable: true),
                    logo = table.Column<byte[]>(type: "BLOB", nullable: true),
                    updated_at = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_buyer_web_settings", x => x.subscription_id);
                    table.ForeignKey(
                        name: "fk_buyer_web_settings_subscriptions_subscription_id",
                        column: x => x.subscription_id,
                        principalTable: "subscriptions",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "buyer_web_settings");
        }
    }
}
