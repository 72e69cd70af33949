using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace CmpWaldurAdapter.Persistence.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class Operators : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "demo_flows",
                columns: table => new
                {
                    slug = table.Column<string>(type: "TEXT", maxLength: 100, nullable: false),
                    langflow_flow_id = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    content_hash = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    updated_at = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_demo_flows", x => x.slug);
                });

            migrationBuilder.CreateTable(
                name: "demo_runtimes",
                columns: table => new
                {
                    username = table.Column<string>(type: "TEXT", maxLength: 100, nullable: false),
                    langflow_user_id = table.Column<string>(type: "TEXT", maxLength: 64, nullable: true),
                    password_cipher = table.Column<string>(type: "TEXT", nullable: true),
                    api_key_id = table.Column<string>(type: "TEXT", maxLength: 64, nullable: true),
                    api_key_cipher = table.Column<string>(type: "TEXT", nullable: true),
                    updated_at = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_demo_runtimes", x => x.username);
                });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "demo_flows");

            migrationBuilder.DropTable(
                name: "demo_runtimes");
        }
    }
}
