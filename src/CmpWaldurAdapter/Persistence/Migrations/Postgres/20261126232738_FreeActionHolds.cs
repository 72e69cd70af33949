using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace CmpWaldurAdapter.Persistence.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class FreeActionHolds : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropCheckConstraint(
                name: "ck_credit_reservations_credits",
                table: "credit_reservations");

            migrationBuilder.AddCheckConstraint(
                name: "ck_credit_reservations_credits",
                table: "credit_reservations",
                sql: "credits >= 0");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropCheckConstraint(
                name: "ck_credit_reservations_credits",
                table: "credit_reservations");

            migrationBuilder.AddCheckConstraint(
                name: "ck_credit_reservations_credits",
                table: "credit_reservations",
                sql: "credits > 0");
        }
    }
}
