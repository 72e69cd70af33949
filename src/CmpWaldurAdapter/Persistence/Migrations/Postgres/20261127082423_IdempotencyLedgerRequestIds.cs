using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace CmpWaldurAdapter.Persistence.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class IdempotencyLedgerRequestIds : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "ledger_request_id",
                table: "idempotent_requests",
                type: "character varying(320)",
                maxLength: 320,
                nullable: false,
                defaultValue: "");

            // Entries made before keep the request id their attempts held and charged under.
            migrationBuilder.Sql("""UPDATE idempotent_requests SET ledger_request_id = 'idem:' || replace(api_key_id::text, '-', '') || ':' || "key";""");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "ledger_request_id",
                table: "idempotent_requests");
        }
    }
}
