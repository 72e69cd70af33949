using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace CmpWaldurAdapter.Persistence.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class ConsoleLinkRenewalAndAlertDates : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "console_link_renew_at",
                table: "buyer_web_settings",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "monthly_spend_alert_set_at",
                table: "buyer_web_settings",
                type: "timestamp with time zone",
                nullable: true);

            // An amount set before this column existed: its last settings change is the latest it can have been set.
            migrationBuilder.Sql("UPDATE buyer_web_settings SET monthly_spend_alert_set_at = updated_at WHERE monthly_spend_alert_credits IS NOT NULL;");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "console_link_renew_at",
                table: "buyer_web_settings");

            migrationBuilder.DropColumn(
                name: "monthly_spend_alert_set_at",
                table: "buyer_web_settings");
        }
    }
}
