using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace CmpWaldurAdapter.Persistence.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class UsageCarryovers : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "usage_carryovers",
                columns: table => new
                {
                    resource_uuid = table.Column<Guid>(type: "uuid", nullable: false),
                    component = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    from_period = table.Column<DateOnly>(type: "date", nullable: false),
                    into_period = table.Column<DateOnly>(type: "date", nullable: false),
                    credits = table.Column<decimal>(type: "numeric(20,2)", precision: 20, scale: 2, nullable: false),
                    subscription_id = table.Column<Guid>(type: "uuid", nullable: true),
                    customer_id = table.Column<Guid>(type: "uuid", nullable: true),
                    carried_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_usage_carryovers", x => new { x.resource_uuid, x.component, x.from_period });
                    table.CheckConstraint("ck_usage_carryovers_credits", "credits >= 0");
                });

            migrationBuilder.CreateIndex(
                name: "ix_usage_carryovers_customer_id_into_period",
                table: "usage_carryovers",
                columns: new[] { "customer_id", "into_period" });

            migrationBuilder.CreateIndex(
                name: "ix_usage_carryovers_into_period",
                table: "usage_carryovers",
                column: "into_period");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "usage_carryovers");
        }
    }
}
