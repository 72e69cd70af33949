using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace CmpWaldurAdapter.Persistence.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class SpendAlerts : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AlterColumn<Guid>(
                name: "conversation_id",
                table: "handoff_deliveries",
                type: "uuid",
                nullable: true,
                oldClrType: typeof(Guid),
                oldType: "uuid");

            migrationBuilder.AddColumn<long>(
                name: "monthly_spend_alert_credits",
                table: "buyer_web_settings",
                type: "bigint",
                nullable: true);

            migrationBuilder.CreateTable(
                name: "spend_alerts",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "uuid", nullable: false),
                    subscription_id = table.Column<Guid>(type: "uuid", nullable: false),
                    period = table.Column<DateOnly>(type: "date", nullable: false),
                    threshold_percent = table.Column<int>(type: "integer", nullable: false),
                    alert_credits = table.Column<long>(type: "bigint", nullable: false),
                    spent_credits = table.Column<long>(type: "bigint", nullable: false),
                    detected_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_spend_alerts", x => x.id);
                    table.ForeignKey(
                        name: "fk_spend_alerts_subscriptions_subscription_id",
                        column: x => x.subscription_id,
                        principalTable: "subscriptions",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "ix_buyer_web_settings_monthly_spend_alert_credits",
                table: "buyer_web_settings",
                column: "monthly_spend_alert_credits",
                filter: "monthly_spend_alert_credits IS NOT NULL");

            migrationBuilder.CreateIndex(
                name: "ix_spend_alerts_subscription_id_period_threshold_percent",
                table: "spend_alerts",
                columns: new[] { "subscription_id", "period", "threshold_percent" },
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "spend_alerts");

            migrationBuilder.DropIndex(
                name: "ix_buyer_web_settings_monthly_spend_alert_credits",
                table: "buyer_web_settings");

            migrationBuilder.DropColumn(
                name: "monthly_spend_alert_credits",
                table: "buyer_web_settings");

            // Spend alerts' deliveries name no conversation: they cannot stay in the older outbox.
            migrationBuilder.Sql("DELETE FROM handoff_deliveries WHERE conversation_id IS NULL;");

            migrationBuilder.AlterColumn<Guid>(
                name: "conversation_id",
                table: "handoff_deliveries",
                type: "uuid",
                nullable: false,
                defaultValue: new Guid("00000000-0000-0000-0000-000000000000"),
                oldClrType: typeof(Guid),
                oldType: "uuid",
                oldNullable: true);
        }
    }
}
