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
            // Earlier versions stored a run state RAGFlow could not name as it came (v0.27 passes "5" through), which took
            // the document out of the parse poll for good. Such a document is followed as a parse still running.
            migrationBuilder.Sql("UPDATE knowledge_documents SET status = 'RUNNING' WHERE status NOT IN ('UNSTART', 'RUNNING', 'CANCEL', 'DONE', 'FAIL')");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {

        }
    }
}
