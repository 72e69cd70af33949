using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace CmpWaldurAdapter.Persistence.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class UnknownParseStatesFollowed : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // Earlier versions stored a run state RAGFlow did not name as it came (the digits it stores them as, or "5",
            // SCHEDULE), which took the document out of the parse poll for good. The digits get their names; a parse
            // done meanwhile was never charged and now never is (charging weeks later could take out a document the
            // buyer has used since); anything else is followed as a parse still running.
            migrationBuilder.Sql("""
                UPDATE knowledge_documents
                SET status = CASE status WHEN '0' THEN 'UNSTART' WHEN '2' THEN 'CANCEL' WHEN '3' THEN 'DONE' WHEN '4' THEN 'FAIL' ELSE 'RUNNING' END,
                    charged_at = CASE WHEN status = '3' AND charged_at IS NULL THEN updated_at ELSE charged_at END,
                    credits_charged = CASE WHEN status = '3' AND charged_at IS NULL THEN 0 ELSE credits_charged END
                WHERE status NOT IN ('UNSTART', 'RUNNING', 'CANCEL', 'DONE', 'FAIL')
                """);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {

        }
    }
}
