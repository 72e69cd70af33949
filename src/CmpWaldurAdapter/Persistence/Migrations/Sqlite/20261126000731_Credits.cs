using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace CmpWaldurAdapter.Persistence.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class Credits : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "credit_accounts",
                columns: table => new
                {
                    customer_id = table.Column<Guid>(type: "TEXT", nullable: false),
                    balance = table.Column<long>(type: "INTEGER", nullable: false),
                    reserved = table.Column<long>(type: "INTEGER", nullable: false),
                    version = table.Column<long>(type: "INTEGER", nullable: false),
                    funded_credits = table.Column<long>(type: "INTEGER", nullable: true),
                    funded_at = table.Column<long>(type: "INTEGER", nullable: true),
                    funded_from = table.Column<DateOnly>(type: "TEXT", nullable: true),
                    created_at = table.Column<long>(type: "INTEGER", nullable: false),
                    updated_at = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_credit_accounts", x => x.customer_id);
                    table.CheckConstraint("ck_credit_accounts_balance", "balance >= 0");
                    table.CheckConstraint("ck_credit_accounts_reserved", "reserved >= 0");
                    table.ForeignKey(
                        name: "fk_credit_accounts_customers_customer_id",
                        column: x => x.customer_id,
                        principalTable: "customers",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Restrict);
                });

            migrationBuilder.CreateTable(
                name: "credit_ledger_entries",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "TEXT", nullable: false),
                    customer_id = table.Column<Guid>(type: "TEXT", nullable: false),
                    kind = table.Column<string>(type: "TEXT", maxLength: 20, nullable: false),
                    credits = table.Column<long>(type: "INTEGER", nullable: false),
                    balance_after = table.Column<long>(type: "INTEGER", nullable: false),
                    component = table.Column<string>(type: "TEXT", maxLength: 64, nullable: true),
                    action_class = table.Column<string>(type: "TEXT", maxLength: 40, nullable: true),
                    price_book_version = table.Column<int>(type: "INTEGER", nullable: true),
                    request_id = table.Column<string>(type: "TEXT", maxLength: 200, nullable: true),
                    scope_id = table.Column<Guid>(type: "TEXT", nullable: false),
                    subscription_id = table.Column<Guid>(type: "TEXT", nullable: true),
                    resource_uuid = table.Column<Guid>(type: "TEXT", nullable: true),
                    reservation_id = table.Column<Guid>(type: "TEXT", nullable: true),
                    occurred_at = table.Column<long>(type: "INTEGER", nullable: false),
                    period = table.Column<DateOnly>(type: "TEXT", nullable: false),
                    reason = table.Column<string>(type: "TEXT", maxLength: 500, nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_credit_ledger_entries", x => x.id);
                    table.CheckConstraint("ck_credit_ledger_entries_credits", "credits >= 0");
                });

            migrationBuilder.CreateTable(
                name: "credit_reservations",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "TEXT", nullable: false),
                    customer_id = table.Column<Guid>(type: "TEXT", nullable: false),
                    subscription_id = table.Column<Guid>(type: "TEXT", nullable: false),
                    resource_uuid = table.Column<Guid>(type: "TEXT", nullable: false),
                    request_id = table.Column<string>(type: "TEXT", maxLength: 200, nullable: false),
                    action_class = table.Column<string>(type: "TEXT", maxLength: 40, nullable: false),
                    component = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    credits = table.Column<long>(type: "INTEGER", nullable: false),
                    price_book_version = table.Column<int>(type: "INTEGER", nullable: false),
                    created_at = table.Column<long>(type: "INTEGER", nullable: false),
                    expires_at = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_credit_reservations", x => x.id);
                    table.CheckConstraint("ck_credit_reservations_credits", "credits > 0");
                });

            migrationBuilder.CreateIndex(
                name: "ix_credit_ledger_entries_customer_id_period",
                table: "credit_ledger_entries",
                columns: new[] { "customer_id", "period" });

            migrationBuilder.CreateIndex(
                name: "ix_credit_ledger_entries_period_resource_uuid",
                table: "credit_ledger_entries",
                columns: new[] { "period", "resource_uuid" });

            migrationBuilder.CreateIndex(
                name: "ix_credit_ledger_entries_reservation_id",
                table: "credit_ledger_entries",
                column: "reservation_id",
                filter: "reservation_id IS NOT NULL");

            migrationBuilder.CreateIndex(
                name: "ix_credit_ledger_entries_scope_id_request_id",
                table: "credit_ledger_entries",
                columns: new[] { "scope_id", "request_id" },
                unique: true,
                filter: "kind IN ('Charge', 'Grant')");

            migrationBuilder.CreateIndex(
                name: "ix_credit_reservations_expires_at",
                table: "credit_reservations",
                column: "expires_at");

            migrationBuilder.CreateIndex(
                name: "ix_credit_reservations_subscription_id_request_id",
                table: "credit_reservations",
                columns: new[] { "subscription_id", "request_id" },
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "credit_accounts");

            migrationBuilder.DropTable(
                name: "credit_ledger_entries");

            migrationBuilder.DropTable(
                name: "credit_reservations");
        }
    }
}
