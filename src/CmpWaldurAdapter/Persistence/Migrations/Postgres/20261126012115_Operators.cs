using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace CmpWaldurAdapter.Persistence.Migrations.Postgres
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
                    slug = table.Column<string>(type: "character varying(100)", maxLength: 100, nullable: false),
                    langflow_flow_id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    content_hash = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    updated_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_demo_flows", x => x.slug);
                });

            migrationBuilder.CreateTable(
                name: "demo_runtimes",
                columns: table => new
                {
                    username = table.Column<string>(type: "character varying(100)", maxLength: 100, nullable: false),
                    langflow_user_id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: true),
                    password_cipher = table.Column<string>(type: "text", nullable: true),
                    api_key_id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: true),
                    api_key_cipher = table.Column<string>(type: "text", nullable: true),
                    updated_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
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
