using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace CmpWaldurAdapter.Persistence.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class KnowledgeBase : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "knowledge_connectors",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "TEXT", nullable: false),
                    subscription_id = table.Column<Guid>(type: "TEXT", nullable: false),
                    kind = table.Column<string>(type: "TEXT", maxLength: 20, nullable: false),
                    description = table.Column<string>(type: "TEXT", maxLength: 2000, nullable: false),
                    protected_settings = table.Column<string>(type: "TEXT", nullable: false),
                    last_synced_at = table.Column<long>(type: "INTEGER", nullable: true),
                    last_error = table.Column<string>(type: "TEXT", maxLength: 2000, nullable: true),
                    created_at = table.Column<long>(type: "INTEGER", nullable: false),
                    updated_at = table.Column<long>(type: "INTEGER", nullable: false),
                    version = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_knowledge_connectors", x => x.id);
                    table.ForeignKey(
                        name: "fk_knowledge_connectors_subscriptions_subscription_id",
                        column: x => x.subscription_id,
                        principalTable: "subscriptions",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "knowledge_documents",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "TEXT", nullable: false),
                    subscription_id = table.Column<Guid>(type: "TEXT", nullable: false),
                    connector_id = table.Column<Guid>(type: "TEXT", nullable: true),
                    source = table.Column<string>(type: "TEXT", maxLength: 20, nullable: false),
                    external_id = table.Column<string>(type: "TEXT", maxLength: 1000, nullable: true),
                    source_version = table.Column<string>(type: "TEXT", maxLength: 200, nullable: true),
                    source_url = table.Column<string>(type: "TEXT", maxLength: 2000, nullable: true),
                    name = table.Column<string>(type: "TEXT", maxLength: 500, nullable: false),
                    ragflow_document_id = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    size_bytes = table.Column<long>(type: "INTEGER", nullable: false),
                    status = table.Column<string>(type: "TEXT", maxLength: 20, nullable: false),
                    progress = table.Column<double>(type: "REAL", nullable: false),
                    error = table.Column<string>(type: "TEXT", maxLength: 2000, nullable: true),
                    parse_started_at = table.Column<long>(type: "INTEGER", nullable: true),
                    parse_attempts = table.Column<int>(type: "INTEGER", nullable: false),
                    charged_at = table.Column<long>(type: "INTEGER", nullable: true),
                    credits_charged = table.Column<long>(type: "INTEGER", nullable: false),
                    created_at = table.Column<long>(type: "INTEGER", nullable: false),
                    updated_at = table.Column<long>(type: "INTEGER", nullable: false),
                    version = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_knowledge_documents", x => x.id);
                    table.ForeignKey(
                        name: "fk_knowledge_documents_knowledge_connectors_connector_id",
                        column: x => x.connector_id,
                        principalTable: "knowledge_connectors",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Restrict);
                    table.ForeignKey(
                        name: "fk_knowledge_documents_subscriptions_subscription_id",
                        column: x => x.subscription_id,
                        principalTable: "subscriptions",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "ix_knowledge_connectors_subscription_id",
                table: "knowledge_connectors",
                column: "subscription_id");

            migrationBuilder.CreateIndex(
                name: "ix_knowledge_documents_connector_id",
                table: "knowledge_documents",
                column: "connector_id");

            migrationBuilder.CreateIndex(
                name: "ix_knowledge_documents_status",
                table: "knowledge_documents",
                column: "status");

            migrationBuilder.CreateIndex(
                name: "ix_knowledge_documents_subscription_id_ragflow_document_id",
                table: "knowledge_documents",
                columns: new[] { "subscription_id", "ragflow_document_id" },
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "knowledge_documents");

            migrationBuilder.DropTable(
                name: "knowledge_connectors");
        }
    }
}
