using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace CmpWaldurAdapter.Persistence.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class IdempotencyScopes : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_idempotent_requests_api_key_id_key",
                table: "idempotent_requests");

            migrationBuilder.AddColumn<string>(
                name: "scope",
                table: "idempotent_requests",
                type: "TEXT",
                maxLength: 16,
                nullable: false,
                defaultValue: "chat");

            // Run keys were stored as "runs:" + the key in the chat keys' column; they move to their own scope.
            migrationBuilder.Sql("""UPDATE idempotent_requests SET scope = 'runs', "key" = substr("key", 6) WHERE substr("key", 1, 5) = 'runs:';""");

            migrationBuilder.CreateIndex(
                name: "ix_idempotent_requests_api_key_id_scope_key",
                table: "idempotent_requests",
                columns: new[] { "api_key_id", "scope", "key" },
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_idempotent_requests_api_key_id_scope_key",
                table: "idempotent_requests");

            // Only run keys that fit the old column with their prefix can go back; a longer one was a 500 before.
            migrationBuilder.Sql("""DELETE FROM idempotent_requests WHERE scope = 'runs' AND length("key") > 250;""");
            migrationBuilder.Sql("""UPDATE idempotent_requests SET "key" = 'runs:' || "key" WHERE scope = 'runs';""");

            migrationBuilder.DropColumn(
                name: "scope",
                table: "idempotent_requests");

            migrationBuilder.CreateIndex(
                name: "ix_idempotent_requests_api_key_id_key",
                table: "idempotent_requests",
                columns: new[] { "api_key_id", "key" },
                unique: true);
        }
    }
}
